// parallel: add[i] = a[i] + b[i] and mult[i] = a[i] * b[i] in one pass, float32.
#include <cstdint>

constexpr int MAX_LEN = 1 << 22;

extern "C" void parallel(const float *a, const float *b, float *add, float *mult, int len) {
#pragma HLS INTERFACE m_axi port = a offset = slave bundle = gmem0 depth = 64 max_read_burst_length = 64
#pragma HLS INTERFACE m_axi port = b offset = slave bundle = gmem1 depth = 64 max_read_burst_length = 64
#pragma HLS INTERFACE m_axi port = add offset = slave bundle = gmem2 depth = 64 max_write_burst_length = 64
#pragma HLS INTERFACE m_axi port = mult offset = slave bundle = gmem3 depth = 64 max_write_burst_length = 64
#pragma HLS INTERFACE s_axilite port = len
#pragma HLS INTERFACE s_axilite port = return
  if (len > MAX_LEN) len = MAX_LEN;
both_loop:
  for (int i = 0; i < len; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 4194304
    float x = a[i], y = b[i];
    add[i] = x + y;
    mult[i] = x * y;
  }
}
