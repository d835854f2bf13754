// A signed product, registered (M register), zero-extended into a wider unsigned post-add
// (Verilog: an unsigned concatenation makes the whole sum unsigned). xilinx_dsp accepts a
// zero-extended M operand for its post-adder, but the DSP48E1 adds the sign-extended
// product: q[21:18] differ whenever the product is negative.
module top(input clk, input en, input signed [7:0] a, input signed [7:0] b,
           input signed [11:0] k, output reg [21:0] q = 0);
  reg signed [17:0] m2 = 0;
  always @(posedge clk) if (en) m2 <= b * 10'sd301;
  always @(posedge clk) if (en) q <= {k, a[5:0]} + m2;
endmodule
