# Template of OUTDIR/vivado/build.tcl: rtlgen sets top, part, clock_mhz, rtl_files before it.

# Out-of-context synthesis and implementation of the network for `part`, then reports.
# Every path is relative to this script, so OUTDIR can be moved or copied anywhere.

set script_dir [file dirname [file normalize [info script]]]
set outdir [file dirname $script_dir]
set report_dir [file join $script_dir reports]
file mkdir $report_dir

create_project -in_memory -part $part
foreach name $rtl_files {
    set path [file join $outdir $name]
    if {[file extension $path] eq ".sv"} {
        read_verilog -sv $path
    } else {
        read_verilog $path
    }
}
read_xdc [file join $script_dir constraints.xdc]

# Out of context: no I/O buffers, so a network with more port bits than package pins still
# places and routes; the numbers are the network's own, as in a larger design.
synth_design -top $top -part $part -mode out_of_context
report_utilization -file [file join $report_dir utilization_synth.rpt]
opt_design
place_design
route_design
write_checkpoint -force [file join $report_dir ${top}_routed.dcp]
report_utilization -file [file join $report_dir utilization.rpt]
report_utilization -hierarchical -file [file join $report_dir utilization_hierarchical.rpt]
report_timing_summary -max_paths 10 -file [file join $report_dir timing_summary.rpt]

# Vivado only warns when timing is not met; this script fails instead.
set period_ns [expr {1000.0 / $clock_mhz}]
set worst_path [get_timing_paths -delay_type max -max_paths 1 -nworst 1]
set wns_ns [get_property SLACK $worst_path]
if {![string is double -strict $wns_ns]} {
    # No register-to-register path: nothing limits the clock.
    set wns_ns $period_ns
}
set fmax_mhz [expr {1000.0 / ($period_ns - $wns_ns)}]
set timing_met [expr {$wns_ns >= 0.0}]
set summary [open [file join $report_dir timing.json] w]
puts $summary [format {{"top": "%s", "part": "%s", "clock_mhz": %s, "wns_ns": %s, "fmax_mhz": %.2f, "timing_met": %s}} \
    $top $part $clock_mhz $wns_ns $fmax_mhz [expr {$timing_met ? "true" : "false"}]]
close $summary

if {!$timing_met} {
    puts stderr "ERROR: \[rtlgen\] timing not met at $clock_mhz MHz on $part: WNS $wns_ns ns (Fmax [format %.1f $fmax_mhz] MHz); see [file join $report_dir timing_summary.rpt]"
    exit 1
}
puts "INFO: \[rtlgen\] timing met at $clock_mhz MHz on $part: WNS $wns_ns ns (Fmax [format %.1f $fmax_mhz] MHz); reports in $report_dir"
