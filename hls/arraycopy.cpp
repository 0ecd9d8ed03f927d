// arraycopy: out[i] = in[i] for i < len (len <= MAX_LEN), int32, data in DDR.
#include <cstdint>

constexpr int MAX_LEN = 1 << 22;

extern "C" void arraycopy(const int32_t *in, int32_t *out, int len) {
#pragma HLS INTERFACE m_axi port = in offset = slave bundle = gmem0 depth = 64 max_read_burst_length = 64
#pragma HLS INTERFACE m_axi port = out offset = slave bundle = gmem1 depth = 64 max_write_burst_length = 64
#pragma HLS INTERFACE s_axilite port = len
#pragma HLS INTERFACE s_axilite port = return
  if (len > MAX_LEN) len = MAX_LEN;
copy_loop:
  for (int i = 0; i < len; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 4194304
    out[i] = in[i];
  }
}
