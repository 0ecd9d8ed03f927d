# Build the overlay for a PYNQ-Z1: vivado -mode batch -source build_overlay.tcl
# Needs the IP exported by build_hls.tcl. Produces vaccel.bit and vaccel.hwh.
create_project -force vaccel_overlay ./vaccel_overlay -part xc7z020clg400-1
set_property ip_repo_paths [glob ./hls_*/solution1/impl/ip] [current_project]
update_ip_catalog
create_bd_design vaccel
set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:processing_system7 ps7]
apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \
    -config {make_external "FIXED_IO, DDR" apply_board_preset "1"} $ps
set_property -dict [list CONFIG.PCW_USE_S_AXI_HP0 {1}] $ps
foreach kernel {vadd arraycopy parallel mmult} {
    create_bd_cell -type ip -vlnv xilinx.com:hls:$kernel:1.0 ${kernel}_0
    apply_bd_automation -rule xilinx.com:bd_rule:axi4 \
        -config {Master "/ps7/M_AXI_GP0" Clk "Auto"} [get_bd_intf_pins ${kernel}_0/s_axi_control]
    foreach port [get_bd_intf_pins -filter {MODE == Master} ${kernel}_0/*] {
        apply_bd_automation -rule xilinx.com:bd_rule:axi4 \
            -config {Slave "/ps7/S_AXI_HP0" Clk "Auto"} $port
    }
}
validate_bd_design
save_bd_design
make_wrapper -files [get_files vaccel.bd] -top -import
launch_runs impl_1 -to_step write_bitstream -jobs 4
wait_on_run impl_1
file copy -force ./vaccel_overlay/vaccel_overlay.runs/impl_1/vaccel_wrapper.bit vaccel.bit
file copy -force ./vaccel_overlay/vaccel_overlay.gen/sources_1/bd/vaccel/hw_handoff/vaccel.hwh vaccel.hwh
exit
