/* test_plot.c - the charts as files: a heatmap's cells take Fu et al.'s colours (#F0496E at 0,
 * #EBB839 at 0.5, #0CD79F at 1, REFERENCE.md 1.4; grey where there is no value), read back from
 * the PNG; curve and bars write both files; bad input is refused naming the stem. */
#include "check.h"
#include "plot.h"

#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
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
    const double x[] = {1000, 2000, 4000}, y[] = {0, 50, 100};
    const double v[] = {0, 0.5, 1, 1, NAN, 0, 0.5, 0.5, 0.5};
    plot_data d = {3, x, 3, y, v, 3000};
    snprintf(stem, sizeof stem, "%s/heat", dir);
    CHECK_EQ_INT(plot_heatmap(&d, "t", "Token Limit", "Depth Percent", stem, err, sizeof err),
                 PLOT_OK);
    snprintf(path, sizeof path, "%s.png", stem);
    const long red = count_rgb(path, 0xF0496E), yellow = count_rgb(path, 0xEBB839),
               green = count_rgb(path, 0x0CD79F), grey = count_rgb(path, 0xd9d9d9);
    /* the cells are equal: yellow covers 4, red and green 2 each (plus the colour bar's band) */
    CHECK(red > 1000 && green > 1000 && grey > 1000);
    CHECK(yellow > 2 * red - 400 && yellow < 2 * red + 400);
    CHECK(green > red - 200 && green < red + 200);
    snprintf(path, sizeof path, "%s.svg", stem);
    CHECK(file_size(path) > 1000);

    d.y = NULL;
    d.n_y = 1;
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
    d.n_x = 3;
    d.y = y;
    d.n_y = 3;
    CHECK_EQ_INT(plot_heatmap(&d, "t", "x", "y", stem, err, sizeof err), PLOT_ERR_IO);
    CHECK(strstr(err, "/nonexistent/dir/heat.svg") != NULL);
    /* the font caches cairo and fontconfig keep for the process's life, freed so that the
     * leak checker sees ours only */
    cairo_debug_reset_static_data();
    FcFini();
    return check_exit("test_plot");
}
