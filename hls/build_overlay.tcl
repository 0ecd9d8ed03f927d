# Build the overlay for a PYNQ-Z1:  vivado -mode batch -source build_overlay.tcl
#
# Needs the IP that build_hls.tcl exported (hls_*/solution1/impl/ip). Written for Vivado
# 2020.2 to 2023.2 (the same version as Vitis HLS). Produces vaccel.bit and vaccel.hwh,
# and only when the design meets timing.
#
# * The PYNQ-Z1 board part when its board files are installed (Digilent's), else the bare
#   part; either way FCLK0 is set to 100 MHz explicitly, as PYNQ's own base.tcl does (the
#   PS7 default is 50 MHz, and the cores are synthesised for 10 ns). pynq programs the
#   PL clocks from the .hwh when it loads the overlay.
# * The cores spread over the four high-performance ports, one each (vadd on HP0,
#   arraycopy on HP1, parallel on HP2, mmult on HP3), so they stream in parallel instead
#   of sharing one 64-bit port through one interconnect.
# * The timing check opens the routed design and fails the build on negative setup
#   (WNS) or hold (WHS) slack, before anything is copied.
set part xc7z020clg400-1
set board_parts [get_board_parts -quiet -latest_file_version {*pynq-z1*}]
set cores {vadd arraycopy parallel mmult}

create_project -force vaccel_overlay ./vaccel_overlay -part $part
if {[llength $board_parts]} {
    set_property board_part [lindex $board_parts 0] [current_project]
    puts "board part: [lindex $board_parts 0]"
} else {
    puts "WARNING: no PYNQ-Z1 board files; building for the bare part $part"
}
set_property ip_repo_paths [glob ./hls_*/solution1/impl/ip] [current_project]
update_ip_catalog

create_bd_design vaccel
set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:processing_system7 ps7]
apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \
    -config [list make_external "FIXED_IO, DDR" apply_board_preset [expr {[llength $board_parts] ? 1 : 0}]] $ps
set_property -dict [list \
    CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ {100} \
    CONFIG.PCW_EN_CLK0_PORT {1} \
    CONFIG.PCW_USE_M_AXI_GP0 {1} \
    CONFIG.PCW_USE_S_AXI_HP0 {1} \
    CONFIG.PCW_USE_S_AXI_HP1 {1} \
    CONFIG.PCW_USE_S_AXI_HP2 {1} \
    CONFIG.PCW_USE_S_AXI_HP3 {1} \
] $ps

set hp 0
foreach kernel $cores {
    set cell [create_bd_cell -type ip -vlnv xilinx.com:hls:$kernel:1.0 ${kernel}_0]
    apply_bd_automation -rule xilinx.com:bd_rule:axi4 \
        -config [list Master /ps7/M_AXI_GP0 Clk Auto] [get_bd_intf_pins ${kernel}_0/s_axi_control]
    foreach port [get_bd_intf_pins -filter {MODE == Master} ${kernel}_0/*] {
        apply_bd_automation -rule xilinx.com:bd_rule:axi4 \
            -config [list Slave /ps7/S_AXI_HP$hp Clk Auto] $port
    }
    incr hp
}
assign_bd_address
validate_bd_design
save_bd_design
make_wrapper -files [get_files vaccel.bd] -top -import

launch_runs impl_1 -to_step write_bitstream -jobs 4
wait_on_run impl_1
if {[get_property PROGRESS [get_runs impl_1]] != "100%"} {
    error "implementation did not finish: see vaccel_overlay/vaccel_overlay.runs/impl_1"
}

open_run impl_1
set wns [get_property SLACK [get_timing_paths -delay_type max -max_paths 1 -nworst 1]]
set whs [get_property SLACK [get_timing_paths -delay_type min -max_paths 1 -nworst 1]]
report_timing_summary -file vaccel_timing.rpt
if {$wns eq "" || $whs eq "" || $wns < 0 || $whs < 0} {
    error "timing not met (WNS=$wns ns, WHS=$whs ns; vaccel_timing.rpt): no bitstream copied"
}
puts "timing met: WNS=$wns ns, WHS=$whs ns"

file copy -force ./vaccel_overlay/vaccel_overlay.runs/impl_1/vaccel_wrapper.bit vaccel.bit
# Vivado 2020.2 and later keep generated files under .gen, older ones under .srcs.
set hwh [glob -nocomplain ./vaccel_overlay/vaccel_overlay.gen/sources_1/bd/vaccel/hw_handoff/vaccel.hwh \
                           ./vaccel_overlay/vaccel_overlay.srcs/sources_1/bd/vaccel/hw_handoff/vaccel.hwh]
if {![llength $hwh]} { error "no vaccel.hwh found under vaccel_overlay" }
file copy -force [lindex $hwh 0] vaccel.hwh
puts "wrote vaccel.bit and vaccel.hwh"
exit
