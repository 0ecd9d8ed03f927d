// mmult: one tile product C = A * B (+ C when accumulate != 0), n x n floats, n <= N_MAX.
// Tiles are copied into on-chip memory, multiplied, and written back; the plugin
// multiplies larger matrices tile by tile, accumulating over the k tiles.
#include <cstdint>

constexpr int N_MAX = 64;

extern "C" void mmult(const float *a, const float *b, float *c, int n, int accumulate) {
#pragma HLS INTERFACE m_axi port = a offset = slave bundle = gmem0 depth = 4096
#pragma HLS INTERFACE m_axi port = b offset = slave bundle = gmem1 depth = 4096
#pragma HLS INTERFACE m_axi port = c offset = slave bundle = gmem2 depth = 4096
#pragma HLS INTERFACE s_axilite port = n
#pragma HLS INTERFACE s_axilite port = accumulate
#pragma HLS INTERFACE s_axilite port = return
  float la[N_MAX][N_MAX], lb[N_MAX][N_MAX], lc[N_MAX][N_MAX];
#pragma HLS ARRAY_PARTITION variable = la dim = 2 factor = 16 cyclic
#pragma HLS ARRAY_PARTITION variable = lb dim = 1 factor = 16 cyclic
  if (n > N_MAX) n = N_MAX;
  if (n < 1) return;
read_tiles:
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
#pragma HLS PIPELINE II = 1
      la[i][j] = a[i * n + j];
      lb[i][j] = b[i * n + j];
      lc[i][j] = accumulate ? c[i * n + j] : 0.0f;
    }
multiply:
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
#pragma HLS PIPELINE II = 4
      float sum = lc[i][j];
      for (int k = 0; k < N_MAX; k++) {
#pragma HLS UNROLL factor = 16
        if (k < n) sum += la[i][k] * lb[k][j];
      }
      lc[i][j] = sum;
    }
write_tile:
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
#pragma HLS PIPELINE II = 1
      c[i * n + j] = lc[i][j];
    }
}
