/* Runs transent.c's mexFunction once per delay, as the toolbox's ASDFTE.m does, on a
   recording in ASDF form read from a small binary file:
     int64 n; n x (int64 count, count doubles: 1-based spike bins); double info[2] (unused, duration)
   Usage: transent_main IN OUT first_delay last_delay x_order y_order
   OUT gets one n x n float64 matrix per delay (MATLAB's column-major te_result). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "mex.h"

static mxArray *vec(size_t n) {
  mxArray *a = mxCreateDoubleMatrix(n, 1, mxREAL);
  return a;
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s IN OUT first_delay last_delay x_order y_order\n", argv[0]);
    return 2;
  }
  FILE *f = fopen(argv[1], "rb");
  if (!f) { perror(argv[1]); return 2; }
  int64_t n;
  if (fread(&n, 8, 1, f) != 1) return 2;
  mxArray all = {1, (size_t)n + 2, NULL, (mxArray **)calloc((size_t)n + 2, sizeof(mxArray *))};
  for (int64_t i = 0; i < n; ++i) {
    int64_t c;
    if (fread(&c, 8, 1, f) != 1) return 2;
    all.cells[i] = vec((size_t)c);
    if (c && fread(all.cells[i]->pr, 8, (size_t)c, f) != (size_t)c) return 2;
  }
  all.cells[n] = vec(1);
  all.cells[n + 1] = vec(2);
  if (fread(all.cells[n + 1]->pr, 8, 2, f) != 2) return 2;
  fclose(f);
  FILE *out = fopen(argv[2], "wb");
  if (!out) { perror(argv[2]); return 2; }
  double d = 0, xo = atof(argv[5]), yo = atof(argv[6]);
  mxArray delay = {0, 1, &d, NULL}, xorder = {0, 1, &xo, NULL}, yorder = {0, 1, &yo, NULL};
  const mxArray *in[4] = {&all, &delay, &xorder, &yorder};
  for (int dl = atoi(argv[3]); dl <= atoi(argv[4]); ++dl) {
    mxArray *res[1];
    d = dl;
    mexFunction(1, res, 4, in);
    fwrite(res[0]->pr, 8, (size_t)(n * n), out);
    free(res[0]->pr);
    free(res[0]);
  }
  fclose(out);
  return 0;
}
