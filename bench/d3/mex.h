/* The few MATLAB mex calls that the Transfer Entropy Toolbox's transent.c makes, so that
   the file builds unchanged as a plain C program (bench/d3_toolbox.py). Not MATLAB's header. */
#ifndef TE_EXT_BENCH_MEX_SHIM_H
#define TE_EXT_BENCH_MEX_SHIM_H
#include <stdio.h>
#include <stdlib.h>

typedef size_t mwSize;
typedef size_t mwIndex;
typedef struct mxArray {
  int is_cell;
  size_t n;
  double *pr;
  struct mxArray **cells;
} mxArray;
enum { mxREAL = 0 };

static inline size_t mxGetNumberOfElements(const mxArray *a) { return a->n; }
static inline double *mxGetPr(const mxArray *a) { return a->pr; }
static inline mxArray *mxGetCell(const mxArray *a, size_t i) { return a->cells[i]; }
static inline int mxIsCell(const mxArray *a) { return a->is_cell; }
static inline void mexErrMsgTxt(const char *s) {
  fprintf(stderr, "%s\n", s);
  exit(1);
}
static inline mxArray *mxCreateDoubleMatrix(size_t m, size_t n, int complexity) {
  (void)complexity;
  mxArray *a = (mxArray *)calloc(1, sizeof *a);
  a->n = m * n;
  a->pr = (double *)calloc(m * n, sizeof(double));
  return a;
}
void mexFunction(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]);
#endif
