/* test_plot.c - the charts as files: a heatmap's cells take Fu et al.'s colours (#F0496E at 0,
 * #EBB839 at 0.5, #0CD79F at 1, linear between, REFERENCE.md 1.4; grey where there is no value),
 * read back from the PNG, each at its row and column of a non-square grid (so a transposed
 * drawing fails); curve and bars write both files; bad input is refused naming the stem. */
#include "check.h"
#include "plot.h"

#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* how many pixels of the PNG have colour rgb (0xRRGGBB); -1 if it cannot be read */
static long count_rgb(const char *path, uint32_t rgb) {
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return -1;
    }
    cairo_surface_flush(s);
    const int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    const int stride = cairo_image_surface_get_stride(s);
    const unsigned char *d = cairo_image_surface_get_data(s);
    long n = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint32_t px;
            memcpy(&px, d + (size_t)y * (size_t)stride + 4 * (size_t)x, 4);
            n += (px & 0xffffffu) == rgb;
        }
    cairo_surface_destroy(s);
    return n;
}

/* where the pixels of colour rgb (each channel within tol) lie in the PNG: their count and
 * median x and y (a cell's; a colour bar band of the same colour is too small to move them) */
typedef struct {
    long n;
    int x, y;
} spot;

static spot find_rgb(const char *path, uint32_t rgb, int tol) {
    spot o = {-1, -1, -1};
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return o;
    }
    cairo_surface_flush(s);
    const int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    const int stride = cairo_image_surface_get_stride(s);
    const unsigned char *d = cairo_image_surface_get_data(s);
    long *col = calloc((size_t)w, sizeof *col), *row = calloc((size_t)h, sizeof *row);
    o.n = 0;
    for (int y = 0; col && row && y < h; y++)
        for (int x = 0; x < w; x++) {
            uint32_t px;
            memcpy(&px, d + (size_t)y * (size_t)stride + 4 * (size_t)x, 4);
            int near = 1;
            for (int k = 0; k < 24; k += 8)
                near &= abs((int)((px >> k) & 0xff) - (int)((rgb >> k) & 0xff)) <= tol;
            if (near) {
                col[x]++;
                row[y]++;
                o.n++;
            }
        }
    long acc = 0;
    for (int x = 0; o.n > 0 && x < w && o.x < 0; x++)
        if ((acc += col[x]) * 2 >= o.n)
            o.x = x;
    acc = 0;
    for (int y = 0; o.n > 0 && y < h && o.y < 0; y++)
        if ((acc += row[y]) * 2 >= o.n)
            o.y = y;
    free(col);
    free(row);
    cairo_surface_destroy(s);
    return o;
}

/* Fu et al.'s map at v as 0xRRGGBB, from the stops of REFERENCE.md 1.4, linear in RGB */
static uint32_t fu_rgb(double v) {
    static const double stop[3][3] = {{0xF0, 0x49, 0x6E}, {0xEB, 0xB8, 0x39}, {0x0C, 0xD7, 0x9F}};
    const int k = v < 0.5 ? 0 : 1;
    const double t = (v - 0.5 * k) / 0.5;
    uint32_t rgb = 0;
    for (int c = 0; c < 3; c++)
        rgb = rgb << 8 | (uint32_t)lround(stop[k][c] + t * (stop[k + 1][c] - stop[k][c]));
    return rgb;
}

static int file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fclose(f);
    return (int)n;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    char stem[1024], path[1100], err[256];
    const double x[] = {1000, 2000, 4000};
    /* the heatmap: 3 depths x 5 lengths, every cell its own colour, one without a value */
    enum { NR = 3, NC = 5 };
    const double hx[NC] = {1000, 2000, 4000, 8000, 16000}, hy[NR] = {0, 50, 100};
    const double hv[NR][NC] = {
        {0, 0.1, 0.2, 0.3, 0.4}, {0.5, NAN, 0.6, 0.7, 0.8}, {0.9, 1, 0.05, 0.15, 0.25}};
    plot_data d = {NC, hx, NR, hy, &hv[0][0], 3000};
    snprintf(stem, sizeof stem, "%s/heat", dir);
    CHECK_EQ_INT(plot_heatmap(&d, "t", "Token Limit", "Depth Percent", stem, err, sizeof err),
                 PLOT_OK);
    snprintf(path, sizeof path, "%s.png", stem);
    /* the map's stops themselves */
    CHECK(fu_rgb(0) == 0xF0496E && fu_rgb(0.5) == 0xEBB839 && fu_rgb(1) == 0x0CD79F);
    spot at[NR][NC];
    for (int r = 0; r < NR; r++)
        for (int c = 0; c < NC; c++) {
            /* NaN: grey; the exact stops exactly, the rest within cairo's 8-bit rounding */
            const int none = isnan(hv[r][c]), stop = !none && fmod(hv[r][c], 0.5) == 0;
            at[r][c] = find_rgb(path, none ? 0xd9d9d9 : fu_rgb(hv[r][c]), stop ? 0 : 1);
            CHECK(at[r][c].n > 1000);
        }
    /* every cell in its column (same x as row 0's, right of the one before) and its row (same
     * y as column 0's, below the one above): v[r][c] is drawn at row r, column c */
    for (int r = 0; r < NR; r++)
        for (int c = 0; c < NC; c++) {
            if (c > 0) {
                CHECK(abs(at[r][c].y - at[r][0].y) <= 1);
                CHECK(at[r][c].x > at[r][c - 1].x + 9);
            }
            if (r > 0) {
                CHECK(abs(at[r][c].x - at[0][c].x) <= 1);
                CHECK(at[r][c].y > at[r - 1][c].y + 9);
            }
        }
    /* the cells are equal: the same number of pixels each, give or take a colour bar band */
    for (int r = 0; r < NR; r++)
        for (int c = 0; c < NC; c++)
            CHECK(labs(at[r][c].n - at[0][2].n) < at[0][2].n / 20);
    snprintf(path, sizeof path, "%s.svg", stem);
    CHECK(file_size(path) > 1000);

    const double v[] = {0, 0.5, 1};
    d = (plot_data){3, x, 1, NULL, v, 3000};
    snprintf(stem, sizeof stem, "%s/curve", dir);
    CHECK_EQ_INT(plot_curve(&d, "t", "length", "accuracy", stem, err, sizeof err), PLOT_OK);
    snprintf(path, sizeof path, "%s.png", stem);
    CHECK(file_size(path) > 1000);
    snprintf(path, sizeof path, "%s.svg", stem);
    CHECK(file_size(path) > 1000);

    const char *groups[] = {"a", "b"}, *series[] = {"before", "after"};
    const double bv[] = {10, 20, 30, 40};
    snprintf(stem, sizeof stem, "%s/bars", dir);
    CHECK_EQ_INT(plot_bars("t", 2, groups, 2, series, bv, 40, "%", stem, err, sizeof err), PLOT_OK);
    snprintf(path, sizeof path, "%s.png", stem);
    CHECK(count_rgb(path, 0x4878a8) > 100 && count_rgb(path, 0xe3894b) > 100);
    CHECK_EQ_INT(plot_bars("t", 0, groups, 2, series, bv, 40, "%", stem, err, sizeof err), PLOT_OK);

    /* several curves: each series' colour is drawn (the first three of the palette) */
    const char *names[] = {"niah_single", "vt", "fwe"};
    const double cv[] = {100, 80, 40, 90, 50, 10, NAN, 30, 20};
    plot_series dc = {3, x, 3, names, cv, 2500};
    snprintf(stem, sizeof stem, "%s/curves", dir);
    CHECK_EQ_INT(plot_lines(&dc, PLOT_X_COLUMNS, PLOT_Y_RANGE, 100, "%", "t", "length", "score",
                            stem, err, sizeof err),
                 PLOT_OK);
    snprintf(path, sizeof path, "%s.png", stem);
    CHECK(count_rgb(path, 0x4878a8) > 100 && count_rgb(path, 0xe3894b) > 100 &&
          count_rgb(path, 0x59a14f) > 100);
    snprintf(path, sizeof path, "%s.svg", stem);
    CHECK(file_size(path) > 1000);
    dc.n_series = 0;
    CHECK_EQ_INT(plot_lines(&dc, PLOT_X_COLUMNS, PLOT_Y_RANGE, 100, "%", "t", "x", "y", stem, err,
                            sizeof err),
                 PLOT_ERR_ARG);
    CHECK(strstr(err, "curves") != NULL);

    d.n_x = 0;
    CHECK_EQ_INT(plot_curve(&d, "t", "x", "y", stem, err, sizeof err), PLOT_ERR_ARG);
    CHECK(strstr(err, "curves") != NULL);
    snprintf(stem, sizeof stem, "/nonexistent/dir/heat");
    d = (plot_data){NC, hx, NR, hy, &hv[0][0], 0};
    CHECK_EQ_INT(plot_heatmap(&d, "t", "x", "y", stem, err, sizeof err), PLOT_ERR_IO);
    CHECK(strstr(err, "/nonexistent/dir/heat.svg") != NULL);
    /* the font caches cairo and fontconfig keep for the process's life, freed so that the
     * leak checker sees ours only */
    cairo_debug_reset_static_data();
    FcFini();
    return check_exit("test_plot");
}
