/*
 * plot.h - the charts longctx writes for people: a curve (a score against length), a heatmap
 * (depth x length, Fu et al.'s style) and grouped bars (prep's report), each as <stem>.svg and
 * <stem>.png from one drawing.
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

/* Several curves over one x axis (ppl-vs-length: a model each). All borrowed for the call. */
typedef struct {
    size_t n_x;
    const double *x; /* (n_x) increasing, > 0: drawn at log2(x) */
    size_t n_series;
    const char *const *names; /* (n_series) the legend */
    const double *v;          /* (n_series, n_x) row-major, any finite range; NaN: no value */
    double train;             /* a dashed vertical line at this x; 0: none */
} plot_series;

/*! plot_lines() :
 *  One curve per series against x on a log2 axis (ticks at the x values), the y axis fitted to
 *  the values with a margin, a legend of names, into <stem>.svg and <stem>.png. @return
 *  PLOT_OK, PLOT_ERR_ARG (no columns or series, an x not positive and increasing, no finite
 *  value), PLOT_ERR_IO (err: the file and why), PLOT_ERR_NOMEM. */
int plot_lines(const plot_series *d, const char *title, const char *x_label, const char *y_label,
               const char *stem, char *err, size_t err_bytes);

/*! plot_curves() :
 *  d->n_y curves over the columns: row s of d->v, values in [0, vmax] (vmax <= 0: 1; NaN: no
 *  point), named names[s] in a legend at the right, the y axis 0..vmax with unit after each
 *  tick, d->y ignored, d->train as plot_curve's, into <stem>.svg and <stem>.png. @return
 *  PLOT_OK, PLOT_ERR_ARG (no columns or no curves), PLOT_ERR_IO, PLOT_ERR_NOMEM. */
int plot_curves(const plot_data *d, const char *const *names, double vmax, const char *unit,
                const char *title, const char *x_label, const char *y_label, const char *stem,
                char *err, size_t err_bytes);

#endif
