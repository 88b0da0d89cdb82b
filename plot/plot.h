/*
 * plot.h - the charts longctx writes for people: curves (a score or a loss against length), a
 * heatmap (depth x length, Fu et al.'s style) and grouped bars (prep's report), each as
 * <stem>.svg and <stem>.png from one drawing.
 *
 * Drawn with cairo (Debian's libcairo2-dev): one drawing gives both the SVG and the PNG, with
 * real text from the system's fonts. By hand, PNG alone would need an encoder and a rasteriser
 * with a font: cairo gives better output for less code. No MPI; call it from one rank.
 */
#ifndef LONGCTX_PLOT_H
#define LONGCTX_PLOT_H

#include <stddef.h>

typedef enum {
    PLOT_OK = 0,
    PLOT_ERR_IO = -1,
    PLOT_ERR_NOMEM = -2,
    PLOT_ERR_ARG = -3,
} plot_status;

const char *plot_strerror(int status); /* static string, never NULL */

/* The numbers of a chart; all borrowed for the call. */
typedef struct {
    size_t n_x;
    const double *x; /* (n_x) increasing: the columns' labels (lengths) */
    size_t n_y;
    const double *y; /* (n_y) the heatmap's rows' labels (depths, top to bottom); NULL: curve */
    const double *v; /* (n_y, n_x) row-major values in [0, 1]; NaN: no value */
    double train;    /* a dashed vertical line at this x (between the columns it falls in); 0:
                        none */
} plot_data;

/*! plot_curve() :
 *  Row 0 of d->v against the columns (equally spaced, labelled by x), the y axis 0..1, into
 *  <stem>.svg and <stem>.png. @return PLOT_OK, PLOT_ERR_ARG (no columns), PLOT_ERR_IO (err:
 *  the file and why), PLOT_ERR_NOMEM. */
int plot_curve(const plot_data *d, const char *title, const char *x_label, const char *y_label,
               const char *stem, char *err, size_t err_bytes);

/*! plot_heatmap() :
 *  d->v as cells, rows d->y top to bottom, columns d->x, colours #F0496E -> #EBB839 -> #0CD79F
 *  (red, yellow, green) over 0..1 with a colour bar, into <stem>.svg and <stem>.png. Statuses
 *  as plot_curve. */
int plot_heatmap(const plot_data *d, const char *title, const char *x_label, const char *y_label,
                 const char *stem, char *err, size_t err_bytes);

/*! plot_bars() :
 *  A grouped bar chart: n_groups groups (labelled groups[g]) of n_series bars (series[s] in the
 *  legend), v (n_groups, n_series) row-major in [0, vmax] (vmax <= 0: 1), the axis labelled with
 *  unit, into <stem>.svg and <stem>.png; no groups make an empty chart (an empty corpus's
 *  report). @return PLOT_OK, PLOT_ERR_ARG (no series), PLOT_ERR_IO, PLOT_ERR_NOMEM. */
int plot_bars(const char *title, size_t n_groups, const char *const *groups, size_t n_series,
              const char *const *series, const double *v, double vmax, const char *unit,
              const char *stem, char *err, size_t err_bytes);

/* Several curves over one x axis (RULER: a task each; ppl-vs-length: a model each). All
 * borrowed for the call. */
typedef struct {
    size_t n_x;
    const double *x; /* (n_x) increasing (> 0 on a log2 axis) */
    size_t n_series;
    const char *const *names; /* (n_series) the legend, right of the plot; NULL: none */
    const double *v;          /* (n_series, n_x) row-major; NaN or infinite: no point */
    double train;             /* a dashed vertical line at this x; 0: none */
} plot_series;

typedef enum {
    PLOT_X_COLUMNS = 0, /* equally spaced columns labelled by x (slanted when crowded); an x
                           between two columns (train) log-interpolated */
    PLOT_X_LOG2 = 1,    /* at log2(x), a tick and a grid line at each x */
} plot_x_axis;

typedef enum {
    PLOT_Y_RANGE = 0, /* 0..vmax (vmax <= 0: 1), values clamped, unit after each tick */
    PLOT_Y_FIT = 1,   /* fitted to the finite values with a margin; vmax and unit unused */
} plot_y_axis;

/*! plot_lines() :
 *  One curve per series of d against x, the axes of the kinds x_axis and y_axis, a legend of
 *  d->names, d->train as plot_curve's, into <stem>.svg and <stem>.png. plot_curve is this with
 *  one series, no legend, PLOT_X_COLUMNS and PLOT_Y_RANGE over 0..1. @return PLOT_OK,
 *  PLOT_ERR_ARG (no columns or series; on a log2 axis an x not positive and increasing; fitted,
 *  no finite value), PLOT_ERR_IO (err: the file and why), PLOT_ERR_NOMEM. */
int plot_lines(const plot_series *d, plot_x_axis x_axis, plot_y_axis y_axis, double vmax,
               const char *unit, const char *title, const char *x_label, const char *y_label,
               const char *stem, char *err, size_t err_bytes);

#endif
