// mmult: one tile product C = A * B (+ C when accumulate != 0), n x n floats, n <= N_MAX.
// Tiles are copied into on-chip memory, multiplied, and written back; the plugin
// multiplies larger matrices tile by tile, accumulating over the k tiles.
//
// Pragmas that agree (hls/README.md): every loop is pipelined at II=1 and each has
// one access per port per cycle.
// * The product runs k, i, j with j innermost, LANES columns per cycle: the unrolled
//   u-loop is what the j-loop's PIPELINE would unroll anyway, and lb and lc are split
//   into LANES banks along j (cyclic), so the LANES reads of lb and read-modify-writes
//   of lc in one cycle hit different banks. la[i][k] is one read per cycle.
// * i and j always run over N_MAX (not n): an element of lc comes back after
//   N_MAX * N_MAX / LANES = 256 cycles, far beyond the adder's latency, so the
//   DEPENDENCE pragma (no carried dependence on lc) is true, and II=1 holds for every n.
//   Rows and columns past n compute on stale data and are never written out.
// * C is read only when accumulating, in a loop of its own: no conditional access in a
//   loop body, so the reads of a, b and c are bursts.
#include <cstdint>

constexpr int N_MAX = 64;
constexpr int LANES = 16;  // multiply-adds per cycle

extern "C" void mmult(const float *a, const float *b, float *c, int n, int accumulate) {
#pragma HLS INTERFACE m_axi port = a offset = slave bundle = gmem0 depth = 4096 max_read_burst_length = 64
#pragma HLS INTERFACE m_axi port = b offset = slave bundle = gmem1 depth = 4096 max_read_burst_length = 64
#pragma HLS INTERFACE m_axi port = c offset = slave bundle = gmem2 depth = 4096 max_read_burst_length = 64 max_write_burst_length = 64
#pragma HLS INTERFACE s_axilite port = n
#pragma HLS INTERFACE s_axilite port = accumulate
#pragma HLS INTERFACE s_axilite port = return
  static float la[N_MAX][N_MAX], lb[N_MAX][N_MAX], lc[N_MAX][N_MAX];
#pragma HLS ARRAY_PARTITION variable = lb dim = 2 factor = 16 cyclic
#pragma HLS ARRAY_PARTITION variable = lc dim = 2 factor = 16 cyclic
  if (n > N_MAX) n = N_MAX;
  if (n < 1) return;
read_ab:
  for (int i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 64
    for (int j = 0; j < n; j++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 64
      la[i][j] = a[i * n + j];
      lb[i][j] = b[i * n + j];
    }
  }
  if (accumulate) {
  read_c:
    for (int i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 64
      for (int j = 0; j < n; j++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 64
        lc[i][j] = c[i * n + j];
      }
    }
  } else {
  clear_c:
    for (int i = 0; i < N_MAX; i++)
      for (int j = 0; j < N_MAX; j += LANES) {
#pragma HLS PIPELINE II = 1
        for (int u = 0; u < LANES; u++) {
#pragma HLS UNROLL
          lc[i][j + u] = 0.0f;
        }
      }
  }
multiply:
  for (int k = 0; k < n; k++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 64
    for (int i = 0; i < N_MAX; i++)
      for (int j = 0; j < N_MAX; j += LANES) {
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = lc inter false
        const float aik = la[i][k];
        for (int u = 0; u < LANES; u++) {
#pragma HLS UNROLL
          lc[i][j + u] += aik * lb[k][j + u];
        }
      }
  }
write_c:
  for (int i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 64
    for (int j = 0; j < n; j++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 64
      c[i * n + j] = lc[i][j];
    }
  }
}
