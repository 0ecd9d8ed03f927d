// vadd: c[i] = a[i] + b[i] for i < len (len <= MAX_LEN), float32, data in DDR.
// Control: s_axilite (ap_ctrl_hs); data: one m_axi port per pointer.
// Register map: see REGISTERS.md (the plugin's plugins/pynq/registers.py mirrors it).
#include <cstdint>

constexpr int MAX_LEN = 1 << 22;

extern "C" void vadd(const float *a, const float *b, float *c, int len) {
#pragma HLS INTERFACE m_axi port = a offset = slave bundle = gmem0 depth = 64 max_read_burst_length = 64
#pragma HLS INTERFACE m_axi port = b offset = slave bundle = gmem1 depth = 64 max_read_burst_length = 64
#pragma HLS INTERFACE m_axi port = c offset = slave bundle = gmem2 depth = 64 max_write_burst_length = 64
#pragma HLS INTERFACE s_axilite port = len
#pragma HLS INTERFACE s_axilite port = return
  if (len > MAX_LEN) len = MAX_LEN;
add_loop:
  for (int i = 0; i < len; i++) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 4194304
    c[i] = a[i] + b[i];
  }
}
