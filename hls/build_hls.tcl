# Synthesise and export the four cores as IP:  vitis_hls -f build_hls.tcl
#
# Written for Vitis HLS 2020.2 to 2023.2 (the Tcl flow; 2024.x: vitis-run --mode hls --tcl
# build_hls.tcl). Vitis HLS 2021.2 and older: apply Xilinx's y2k22 patch (AR 76960)
# first, or export_design fails on any date from 2022 on (hls/README.md).
#
# The part is the PYNQ-Z1's Zynq-7020 and the clock 10 ns, the 100 MHz of FCLK0 that
# build_overlay.tcl sets. m_axi addresses are pinned to 64 bits: the default has changed
# between versions and flows, and plugins/pynq/registers.py (checked against the .hwh
# when the overlay loads) assumes three words per pointer. The build stops when a
# pipelined loop misses its II (see the csynth report check below).
set kernels {vadd arraycopy parallel mmult}
if {[info exists ::env(KERNELS)]} { set kernels $::env(KERNELS) }

# The achieved II of every pipelined loop, from the synthesis report (csynth.xml).
proc check_ii {kernel} {
    set files [glob -nocomplain hls_$kernel/solution1/syn/report/csynth.xml \
                   hls_$kernel/solution1/syn/report/${kernel}_csynth.xml]
    if {![llength $files]} {
        puts "WARNING: no csynth.xml for $kernel: check the II in the csynth report by hand"
        return
    }
    set f [open [lindex $files 0]]
    set xml [read $f]
    close $f
    set iis [regexp -all -inline {<PipelineII>\s*([0-9]+)\s*</PipelineII>} $xml]
    foreach {match ii} $iis {
        if {$ii != 1} {
            error "$kernel: a pipelined loop achieved II=$ii, not the II=1 its pragmas ask for\
                   (see hls_$kernel/solution1/syn/report/${kernel}_csynth.rpt)"
        }
    }
    puts "$kernel: [expr {[llength $iis] / 2}] pipelined loop(s), all at II=1"
}

foreach kernel $kernels {
    open_project -reset hls_$kernel
    set_top $kernel
    add_files $kernel.cpp -cflags "-std=c++14"
    open_solution -reset solution1 -flow_target vivado
    set_part xc7z020clg400-1
    create_clock -period 10 -name default
    config_interface -m_axi_addr64
    csynth_design
    check_ii $kernel
    export_design -format ip_catalog -vendor xilinx.com -library hls -version 1.0
    close_project
}
exit
