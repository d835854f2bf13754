// Two products in DSP48E1s (M registers); the second DSP's post-adder takes C = {hi, m1[2:0]}:
// the first product's low bits pass through an add at an offset. xilinx_dsp's PCOUT -> PCIN
// cascade compares only C[0] with the first DSP's P[0] and replaces C by the whole product m1
// (OPMODE 7'h15, C tied to 0). Expected: q == {m1[17:3] - k, m1[2:0]} + m2, registered.
module top(input clk, input en, input signed [7:0] a, input signed [7:0] b,
           input signed [11:0] k, output reg [21:0] q = 0);
  reg signed [17:0] m1 = 0, m2 = 0;
  always @(posedge clk) if (en) begin m1 <= a * 10'sd395; m2 <= b * 11'sd651; end
  wire signed [14:0] hi = m1[17:3] - k;
  wire signed [17:0] c = {hi, m1[2:0]};
  always @(posedge clk) if (en) q <= c + m2;
endmodule
