# Synthesise and export the four cores as IP: vitis_hls -f build_hls.tcl
# (Vitis HLS 2020.2 or later; PYNQ-Z1 part, 100 MHz).
foreach kernel {vadd arraycopy parallel mmult} {
    open_project -reset hls_$kernel
    set_top $kernel
    add_files $kernel.cpp
    open_solution -reset solution1 -flow_target vivado
    set_part xc7z020clg400-1
    create_clock -period 10 -name default
    csynth_design
    export_design -format ip_catalog -vendor xilinx.com -library hls -version 1.0
    close_project
}
exit
