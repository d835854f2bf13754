module tb;
  reg clk = 0, en = 1; reg signed [7:0] a = 0, b = 0; reg signed [11:0] k = 0;
  wire [21:0] q_src, q_gate;
  top  src (.clk(clk), .en(en), .a(a), .b(b), .k(k), .q(q_src));
  gate gate(.clk(clk), .en(en), .a(a), .b(b), .k(k), .q(q_gate));
  integer i, errors = 0, seed = 3;
  always #5 clk = ~clk;
  initial begin
    for (i = 0; i < 1000; i = i + 1) begin
      @(negedge clk);
      a = $random(seed); b = $random(seed); k = $random(seed); en = $random(seed);
      #1 if (q_src !== q_gate) begin
        errors = errors + 1;
        if (errors <= 3) $display("cycle %0d: source %h netlist %h", i, q_src, q_gate);
      end
    end
    $display("%0d of 1000 cycles differ", errors);
    $finish;
  end
endmodule
