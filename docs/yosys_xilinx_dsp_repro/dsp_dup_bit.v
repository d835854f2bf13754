// A register that takes one bit of a product twice (a sign extension) next to another field.
// xilinx_dsp packs the register into the DSP48E1 (PREG, or MREG) and q[16] loses its driver;
// the netlist ties it to 0 (its init value). Expected: q[16] == q[15] == sign of a*c.
module top(input clk, input signed [9:0] a, input signed [15:0] c, input [7:0] d,
           output reg [24:0] q = 0);
  wire signed [17:0] s = a * c;
  always @(posedge clk) q <= {d, s[15], s[15:0]};
endmodule
