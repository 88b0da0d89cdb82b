/* plot.c - curves and heatmaps on cairo: one drawing function per chart, run once on an SVG
 * surface and once on an image surface written as PNG. */
#include "plot.h"

#include <cairo-svg.h>
#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

const char *plot_strerror(int status) {
    switch (status) {
    case PLOT_OK:
        return "ok";
    case PLOT_ERR_IO:
        return "I/O error";
    case PLOT_ERR_NOMEM:
        return "out of memory";
    case PLOT_ERR_ARG:
        return "invalid argument";
    default:
        return "unknown status";
    }
}

/* ==== layout ==================================================================================*/

/* the x of a value over n_x equally spaced columns of width cw from left: column centres,
 * log-interpolated between them; NAN outside the columns */
static double x_at(const double *xs, size_t n_x, double left, double cw, double x) {
    for (size_t j = 0; j < n_x; j++) {
        const double cj = left + ((double)j + 0.5) * cw;
        if (x == xs[j])
            return cj;
        if (j + 1 < n_x && x > xs[j] && x < xs[j + 1]) {
            const double t = xs[j] > 0 ? log(x / xs[j]) / log(xs[j + 1] / xs[j])
                                       : (x - xs[j]) / (xs[j + 1] - xs[j]);
            return cj + t * cw;
        }
    }
    return NAN;
}

static void text(cairo_t *cr, double x, double y, double size, double align, double angle,
                 const char *s) {
    cairo_text_extents_t e;
    cairo_save(cr);
    cairo_set_font_size(cr, size);
    cairo_text_extents(cr, s, &e);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, angle);
    cairo_move_to(cr, -align * e.x_advance, 0);
    cairo_show_text(cr, s);
    cairo_restore(cr);
}

/* Fu et al.'s colours over 0..1: #F0496E -> #EBB839 -> #0CD79F, linear in RGB as matplotlib's
 * LinearSegmentedColormap.from_list interpolates */
static void colour(double v, double *r, double *g, double *b) {
    static const double stops[3][3] = {{0xF0, 0x49, 0x6E}, {0xEB, 0xB8, 0x39}, {0x0C, 0xD7, 0x9F}};
    v = fmin(1.0, fmax(0.0, v));
    const int k = v < 0.5 ? 0 : 1;
    const double t = v < 0.5 ? v / 0.5 : (v - 0.5) / 0.5;
    *r = (stops[k][0] + t * (stops[k + 1][0] - stops[k][0])) / 255.0;
    *g = (stops[k][1] + t * (stops[k + 1][1] - stops[k][1])) / 255.0;
    *b = (stops[k][2] + t * (stops[k + 1][2] - stops[k][2])) / 255.0;
}

static void fmt_num(char *buf, size_t n, double v) {
    snprintf(buf, n, "%.6g", v);
}

/* ==== the heatmap =============================================================================*/

typedef struct {
    const plot_data *d;
    const char *title, *x_label, *y_label;
    double W, H, left, top, cw, ch, pw, ph; /* canvas, plot origin, cell and plot sizes */
} heatmap;

static void draw_heatmap(cairo_t *cr, const void *ctx) {
    const heatmap *c = ctx;
    const plot_data *d = c->d;
    char buf[64];
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text(cr, c->left, 28, 16, 0, 0, c->title);
    const double bottom = c->top + c->ph;
    for (size_t i = 0; i < d->n_y; i++)
        for (size_t j = 0; j < d->n_x; j++) {
            const double v = d->v[i * d->n_x + j];
            double r = 0.85, g = 0.85, b = 0.85; /* no value: grey */
            if (!isnan(v))
                colour(v, &r, &g, &b);
            cairo_set_source_rgb(cr, r, g, b);
            cairo_rectangle(cr, c->left + (double)j * c->cw, c->top + (double)i * c->ch, c->cw,
                            c->ch);
            cairo_fill(cr);
        }
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    for (size_t i = 0; i < d->n_y; i++) {
        fmt_num(buf, sizeof buf, d->y[i]);
        text(cr, c->left - 6, c->top + ((double)i + 0.5) * c->ch + 4, 11, 1, 0, buf);
    }
    /* the colour bar */
    const double bx = c->left + c->pw + 30;
    for (int k = 0; k < 100; k++) {
        double r, g, b;
        colour(1.0 - k / 99.0, &r, &g, &b);
        cairo_set_source_rgb(cr, r, g, b);
        cairo_rectangle(cr, bx, c->top + c->ph * k / 100.0, 16, c->ph / 100.0 + 0.5);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    for (int k = 0; k <= 4; k++) {
        snprintf(buf, sizeof buf, "%.2g", k / 4.0);
        text(cr, bx + 22, bottom - c->ph * k / 4.0 + 4, 11, 0, 0, buf);
    }
    /* the x labels, slanted when crowded */
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    const int slant = c->cw < 44;
    for (size_t j = 0; j < d->n_x; j++) {
        fmt_num(buf, sizeof buf, d->x[j]);
        text(cr, c->left + ((double)j + 0.5) * c->cw + (slant ? -4 : 0), bottom + (slant ? 10 : 16),
             11, slant ? 1 : 0.5, slant ? -M_PI / 4 : 0, buf);
    }
    text(cr, c->left + c->pw / 2, c->H - 12, 13, 0.5, 0, c->x_label);
    text(cr, 20, c->top + c->ph / 2, 13, 0.5, -M_PI / 2, c->y_label);
    /* the training length */
    const double tx = d->train > 0 ? x_at(d->x, d->n_x, c->left, c->cw, d->train) : NAN;
    if (!isnan(tx)) {
        const double dash[] = {6, 4};
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        cairo_set_line_width(cr, 2);
        cairo_set_dash(cr, dash, 2, 0);
        cairo_move_to(cr, tx, c->top);
        cairo_line_to(cr, tx, bottom);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        snprintf(buf, sizeof buf, "training length %.0f", d->train);
        text(cr, tx + 4, c->top - 4, 11, 0, 0, buf);
    } else if (d->train > 0) {
        snprintf(buf, sizeof buf, "training length %.0f: outside the lengths shown", d->train);
        text(cr, c->left + c->pw, 28, 11, 1, 0, buf);
    }
}

/* draw(cr, ctx) on a W x H SVG surface, then on an image written as PNG */
typedef void (*draw_fn)(cairo_t *cr, const void *ctx);

static int render(draw_fn fn, const void *ctx, double W, double H, const char *stem, char *err,
                  size_t err_bytes) {
    char path[4096];
    snprintf(path, sizeof path, "%s.svg", stem);
    cairo_surface_t *svg = cairo_svg_surface_create(path, W, H);
    cairo_t *cr = cairo_create(svg);
    fn(cr, ctx);
    cairo_destroy(cr);
    cairo_surface_finish(svg);
    cairo_status_t st = cairo_surface_status(svg);
    cairo_surface_destroy(svg);
    if (st != CAIRO_STATUS_SUCCESS) {
        snprintf(err, err_bytes, "%s: %s", path, cairo_status_to_string(st));
        return st == CAIRO_STATUS_NO_MEMORY ? PLOT_ERR_NOMEM : PLOT_ERR_IO;
    }
    cairo_surface_t *png =
        cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)ceil(W), (int)ceil(H));
    cr = cairo_create(png);
    fn(cr, ctx);
    cairo_destroy(cr);
    snprintf(path, sizeof path, "%s.png", stem);
    st = cairo_surface_status(png);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_write_to_png(png, path);
    cairo_surface_destroy(png);
    if (st != CAIRO_STATUS_SUCCESS) {
        snprintf(err, err_bytes, "%s: %s", path, cairo_status_to_string(st));
        return st == CAIRO_STATUS_NO_MEMORY ? PLOT_ERR_NOMEM : PLOT_ERR_IO;
    }
    return PLOT_OK;
}

int plot_heatmap(const plot_data *d, const char *title, const char *x_label, const char *y_label,
                 const char *stem, char *err, size_t err_bytes) {
    if (!d->n_x || !d->x || !d->v || !d->n_y || !d->y) {
        snprintf(err, err_bytes, "%s: no values to plot", stem);
        return PLOT_ERR_ARG;
    }
    heatmap c = {d, title, x_label, y_label, 0, 0, 80, 50, 0, 0, 0, 0};
    c.cw = fmax(18.0, 720.0 / (double)d->n_x);
    c.pw = c.cw * (double)d->n_x;
    c.ch = fmax(18.0, 360.0 / (double)d->n_y);
    c.ph = c.ch * (double)d->n_y;
    c.W = c.left + c.pw + 120;
    c.H = c.top + c.ph + 95;
    return render(draw_heatmap, &c, c.W, c.H, stem, err, err_bytes);
}

/* ==== bars ====================================================================================*/

typedef struct {
    const char *title, *unit;
    size_t n_groups, n_series;
    const char *const *groups, *const *series;
    const double *v;
    double vmax, W, H;
} bars;

static void draw_bars(cairo_t *cr, const void *ctx) {
    static const double colours[5][3] = {{0x48, 0x78, 0xa8},
                                         {0xe3, 0x89, 0x4b},
                                         {0x59, 0xa1, 0x4f},
                                         {0xb0, 0x7a, 0xa1},
                                         {0x9c, 0x75, 0x5f}};
    const bars *b = ctx;
    const double top = 40, bottom = 110, ph = b->H - top - bottom,
                 step = (double)b->n_series * 18 + 24;
    char buf[96];
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text(cr, 10, 20, 14, 0, 0, b->title);
    cairo_set_line_width(cr, 1);
    for (int k = 0; k <= 4; k++) { /* the grid */
        const double y = top + ph - ph * k / 4;
        cairo_set_source_rgb(cr, 0.87, 0.87, 0.87);
        cairo_move_to(cr, 60, y);
        cairo_line_to(cr, b->W - 10, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        snprintf(buf, sizeof buf, "%.3g%s", b->vmax * k / 4, b->unit);
        text(cr, 55, y + 4, 11, 1, 0, buf);
    }
    for (size_t g = 0; g < b->n_groups; g++) {
        const double x0 = 70 + (double)g * step;
        for (size_t s = 0; s < b->n_series; s++) {
            const double v = b->v[g * b->n_series + s];
            const double h = ph * fmin(1.0, fmax(0.0, isnan(v) ? 0 : v / b->vmax));
            const double *c = colours[s % 5];
            cairo_set_source_rgb(cr, c[0] / 255, c[1] / 255, c[2] / 255);
            cairo_rectangle(cr, x0 + (double)s * 18, top + ph - h, 16, h);
            cairo_fill(cr);
        }
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        snprintf(buf, sizeof buf, "%.24s", b->groups[g]);
        text(cr, x0, b->H - bottom + 14, 11, 0, 0.7, buf);
    }
    for (size_t s = 0; s < b->n_series; s++) { /* the legend */
        const double x = b->W - 10 - (double)(b->n_series - s) * 110;
        const double *c = colours[s % 5];
        cairo_set_source_rgb(cr, c[0] / 255, c[1] / 255, c[2] / 255);
        cairo_rectangle(cr, x, 26, 10, 10);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text(cr, x + 14, 35, 11, 0, 0, b->series[s]);
    }
}

int plot_bars(const char *title, size_t n_groups, const char *const *groups, size_t n_series,
              const char *const *series, const double *v, double vmax, const char *unit,
              const char *stem, char *err, size_t err_bytes) {
    if (!n_series || !series || (n_groups && (!groups || !v))) { /* no groups: an empty chart */
        snprintf(err, err_bytes, "%s: no values to plot", stem);
        return PLOT_ERR_ARG;
    }
    bars b = {title, unit ? unit : "",    n_groups, n_series, groups, series,
              v,     vmax > 0 ? vmax : 1, 0,        340};
    b.W = fmax(360.0, 160.0 + (double)n_groups * ((double)n_series * 18 + 24));
    return render(draw_bars, &b, b.W, b.H, stem, err, err_bytes);
}

/* ==== curves ================================================================================*/

typedef struct {
    const plot_series *d;
    plot_x_axis x_axis;
    plot_y_axis y_axis;
    const char *unit, *title, *x_label, *y_label;
    double lo, hi;                      /* the y axis */
    double W, H, left, top, cw, pw, ph; /* canvas, plot origin, column and plot sizes */
} lines;

/* the x of a value on the axis; NAN outside x[0]..x[n_x - 1] */
static double lines_x(const lines *c, double x) {
    const plot_series *d = c->d;
    if (c->x_axis == PLOT_X_COLUMNS)
        return x_at(d->x, d->n_x, c->left, c->cw, x);
    if (!(x >= d->x[0] && x <= d->x[d->n_x - 1]))
        return NAN;
    const double a = log2(d->x[0]), b = log2(d->x[d->n_x - 1]);
    return c->left + (b > a ? (log2(x) - a) / (b - a) : 0.5) * c->pw;
}

/* the x of column j */
static double lines_xj(const lines *c, size_t j) {
    return c->x_axis == PLOT_X_COLUMNS ? c->left + ((double)j + 0.5) * c->cw
                                       : lines_x(c, c->d->x[j]);
}

static double lines_y(const lines *c, double v) {
    const double bottom = c->top + c->ph;
    if (c->y_axis == PLOT_Y_RANGE)
        return bottom - c->ph * fmin(1.0, fmax(0.0, v / c->hi));
    return bottom - (v - c->lo) / (c->hi - c->lo) * c->ph;
}

static void draw_lines(cairo_t *cr, const void *ctx) {
    static const double colours[8][3] = {{0x48, 0x78, 0xa8}, {0xe3, 0x89, 0x4b}, {0x59, 0xa1, 0x4f},
                                         {0xd6, 0x4f, 0x53}, {0xb0, 0x7a, 0xa1}, {0x9c, 0x75, 0x5f},
                                         {0xed, 0xc9, 0x48}, {0x76, 0xb7, 0xb2}};
    const lines *c = ctx;
    const plot_series *d = c->d;
    const double bottom = c->top + c->ph;
    char buf[96];
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text(cr, c->left, 28, 16, 0, 0, c->title);
    cairo_set_line_width(cr, 1);
    const int n_ticks = c->y_axis == PLOT_Y_RANGE ? 4 : 5;
    for (int q = 0; q <= n_ticks; q++) { /* the grid and the y axis */
        const double y = bottom - c->ph * q / n_ticks;
        cairo_set_source_rgb(cr, 0.87, 0.87, 0.87);
        cairo_move_to(cr, c->left, y);
        cairo_line_to(cr, c->left + c->pw, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        if (c->y_axis == PLOT_Y_RANGE)
            snprintf(buf, sizeof buf, "%.3g%s", c->hi * q / 4.0, c->unit);
        else
            snprintf(buf, sizeof buf, "%.4g", c->lo + (c->hi - c->lo) * q / n_ticks);
        text(cr, c->left - 6, y + 4, 11, 1, 0, buf);
    }
    if (c->x_axis == PLOT_X_LOG2) /* a grid line at each x */
        for (size_t j = 0; j < d->n_x; j++) {
            cairo_set_source_rgb(cr, 0.87, 0.87, 0.87);
            cairo_move_to(cr, lines_xj(c, j), c->top);
            cairo_line_to(cr, lines_xj(c, j), bottom);
            cairo_stroke(cr);
        }
    for (size_t s = 0; s < d->n_series; s++) {
        const double *col = colours[s % 8];
        const double *v = d->v + s * d->n_x;
        cairo_set_source_rgb(cr, col[0] / 255, col[1] / 255, col[2] / 255);
        cairo_set_line_width(cr, 2);
        int pen = 0;
        for (size_t j = 0; j < d->n_x; j++) {
            if (!isfinite(v[j])) {
                pen = 0;
                continue;
            }
            if (pen)
                cairo_line_to(cr, lines_xj(c, j), lines_y(c, v[j]));
            else
                cairo_move_to(cr, lines_xj(c, j), lines_y(c, v[j]));
            pen = 1;
        }
        cairo_stroke(cr);
        for (size_t j = 0; j < d->n_x; j++)
            if (isfinite(v[j])) {
                cairo_arc(cr, lines_xj(c, j), lines_y(c, v[j]), 4, 0, 2 * M_PI);
                cairo_fill(cr);
            }
        if (!d->names)
            continue;
        /* the legend, right of the plot */
        const double lx = c->left + c->pw + 20, ly = c->top + 10 + 20 * (double)s;
        cairo_rectangle(cr, lx, ly - 9, 12, 12);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        snprintf(buf, sizeof buf, "%.40s", d->names[s]);
        text(cr, lx + 18, ly + 2, 11, 0, 0, buf);
    }
    /* the x labels, on columns slanted when crowded */
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    const int slant = c->x_axis == PLOT_X_COLUMNS && c->cw < 44;
    for (size_t j = 0; j < d->n_x; j++) {
        fmt_num(buf, sizeof buf, d->x[j]);
        text(cr, lines_xj(c, j) + (slant ? -4 : 0), bottom + (slant ? 10 : 16), 11, slant ? 1 : 0.5,
             slant ? -M_PI / 4 : 0, buf);
    }
    text(cr, c->left + c->pw / 2, c->H - 12, 13, 0.5, 0, c->x_label);
    text(cr, 20, c->top + c->ph / 2, 13, 0.5, -M_PI / 2, c->y_label);
    /* the training length */
    const double tx = d->train > 0 ? lines_x(c, d->train) : NAN;
    if (!isnan(tx)) {
        const double dash[] = {6, 4};
        cairo_set_line_width(cr, 2);
        cairo_set_dash(cr, dash, 2, 0);
        cairo_move_to(cr, tx, c->top);
        cairo_line_to(cr, tx, bottom);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        snprintf(buf, sizeof buf, "training length %.0f", d->train);
        text(cr, tx + 4, c->top - 4, 11, 0, 0, buf);
    } else if (d->train > 0) {
        snprintf(buf, sizeof buf, "training length %.0f: outside the lengths shown", d->train);
        text(cr, c->left + c->pw, 44, 11, 1, 0, buf);
    }
}

int plot_lines(const plot_series *d, plot_x_axis x_axis, plot_y_axis y_axis, double vmax,
               const char *unit, const char *title, const char *x_label, const char *y_label,
               const char *stem, char *err, size_t err_bytes) {
    int ok = d->n_x && d->x && d->n_series && d->v;
    for (size_t j = 0; ok && x_axis == PLOT_X_LOG2 && j < d->n_x; j++)
        ok = d->x[j] > 0 && (j == 0 || d->x[j] > d->x[j - 1]);
    double lo = 0, hi = vmax > 0 ? vmax : 1;
    if (ok && y_axis == PLOT_Y_FIT) {
        lo = INFINITY;
        hi = -INFINITY;
        for (size_t i = 0; i < d->n_x * d->n_series; i++)
            if (isfinite(d->v[i])) {
                lo = fmin(lo, d->v[i]);
                hi = fmax(hi, d->v[i]);
            }
        ok = lo <= hi;
        const double pad = hi > lo ? 0.08 * (hi - lo) : fmax(0.05 * fabs(lo), 0.05);
        lo -= pad;
        hi += pad;
    }
    if (!ok) {
        snprintf(err, err_bytes, "%s: no values to plot", stem);
        return PLOT_ERR_ARG;
    }
    lines c = {d, x_axis, y_axis, unit ? unit : "", title, x_label, y_label, lo, hi, 0, 0, 80, 50,
               0, 0,      320};
    const double n_x = (double)d->n_x;
    c.cw = fmax(40.0, 720.0 / n_x);
    c.pw = x_axis == PLOT_X_COLUMNS ? c.cw * n_x : fmax(480.0, 90.0 * n_x);
    c.W = c.left + c.pw + 40 + (d->names ? 150 : 0);           /* the legend */
    c.H = c.top + c.ph + (x_axis == PLOT_X_COLUMNS ? 95 : 60); /* room for slanted labels */
    if (d->names)
        c.H = fmax(c.H, c.top + 30 + 20 * (double)d->n_series);
    return render(draw_lines, &c, c.W, c.H, stem, err, err_bytes);
}

int plot_curve(const plot_data *d, const char *title, const char *x_label, const char *y_label,
               const char *stem, char *err, size_t err_bytes) {
    const plot_series s = {d->n_x, d->x, 1, NULL, d->v, d->train};
    return plot_lines(&s, PLOT_X_COLUMNS, PLOT_Y_RANGE, 1, "", title, x_label, y_label, stem, err,
                      err_bytes);
}
