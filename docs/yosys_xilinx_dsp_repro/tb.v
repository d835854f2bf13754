// Compare the source (module top) with the synthesized netlist (module gate) on random inputs.
module tb;
  reg clk = 0; reg signed [9:0] a = 0; reg signed [15:0] c = 0; reg [7:0] d = 0;
  wire [24:0] q_src, q_gate;
  top  src (.clk(clk), .a(a), .c(c), .d(d), .q(q_src));
  gate gate(.clk(clk), .a(a), .c(c), .d(d), .q(q_gate));
  integer i, errors = 0, seed = 1;
  always #5 clk = ~clk;
  initial begin
    for (i = 0; i < 1000; i = i + 1) begin
      @(negedge clk);
      a = $random(seed); c = $random(seed); d = $random(seed);
      #1 if (q_src !== q_gate) begin
        errors = errors + 1;
        if (errors <= 3) $display("cycle %0d: source %h netlist %h", i, q_src, q_gate);
      end
    end
    $display("%0d of 1000 cycles differ", errors);
    $finish;
  end
endmodule
