// Yosys techmap for the ECP5 build (boards/ecp5.py): a product by a constant whose magnitude
// has 2 to `RTLGEN_CONST_MUL_TERMS set bits becomes that many shifted copies of the other
// operand added up (negated for a negative constant), so synth_ecp5 builds it from carry
// chains instead of a MULT18X18D. Y = A * B modulo 2^Y_WIDTH with each operand read as its
// *_SIGNED says, as $mul. Products of two signals, by constants with more set bits, or by
// +-2^k (opt_expr makes those a shift) are left alone (_TECHMAP_FAIL_).
`ifndef RTLGEN_CONST_MUL_TERMS
`define RTLGEN_CONST_MUL_TERMS 4
`endif
(* techmap_celltype = "$mul" *)
module _rtlgen_ecp5_const_mul (A, B, Y);
	parameter A_SIGNED = 0;
	parameter B_SIGNED = 0;
	parameter A_WIDTH = 1;
	parameter B_WIDTH = 1;
	parameter Y_WIDTH = 1;
	parameter _TECHMAP_CONSTMSK_A_ = 0;
	parameter _TECHMAP_CONSTMSK_B_ = 0;
	parameter _TECHMAP_CONSTVAL_B_ = 0;

	(* force_downto *)
	input [A_WIDTH-1:0] A;
	(* force_downto *)
	input [B_WIDTH-1:0] B;
	(* force_downto *)
	output [Y_WIDTH-1:0] Y;

	localparam [B_WIDTH-1:0] MASK_B = _TECHMAP_CONSTMSK_B_;
	localparam [A_WIDTH-1:0] MASK_A = _TECHMAP_CONSTMSK_A_;
	localparam [B_WIDTH-1:0] C = _TECHMAP_CONSTVAL_B_;
	// a negative constant: Y = -(A * |C|); |C| read unsigned (also for C = -2^(B_WIDTH-1))
	localparam NEGATIVE = B_SIGNED && C[B_WIDTH-1];
	localparam [B_WIDTH-1:0] MAGNITUDE = NEGATIVE ? -C : C;

	function integer ones(input [B_WIDTH-1:0] value);
		integer k;
		begin
			ones = 0;
			for (k = 0; k < B_WIDTH; k = k + 1)
				ones = ones + value[k];
		end
	endfunction

	generate
	if ((&MASK_B) && !(&MASK_A) && ones(MAGNITUDE) >= 2 && ones(MAGNITUDE) <= `RTLGEN_CONST_MUL_TERMS) begin
		(* force_downto *)
		wire [Y_WIDTH-1:0] a_ext;
		if (A_SIGNED && A_WIDTH < Y_WIDTH)
			assign a_ext = {{(Y_WIDTH - A_WIDTH){A[A_WIDTH-1]}}, A};
		else if (A_WIDTH < Y_WIDTH)
			assign a_ext = {{(Y_WIDTH - A_WIDTH){1'b0}}, A};
		else
			assign a_ext = A[Y_WIDTH-1:0];
		// partial sums: sum[i] = A times the magnitude's bits below i
		(* force_downto *)
		wire [(B_WIDTH+1)*Y_WIDTH-1:0] sum;
		assign sum[Y_WIDTH-1:0] = {Y_WIDTH{1'b0}};
		genvar i;
		for (i = 0; i < B_WIDTH; i = i + 1) begin: term
			if (!MAGNITUDE[i] || i >= Y_WIDTH)
				assign sum[(i+2)*Y_WIDTH-1:(i+1)*Y_WIDTH] = sum[(i+1)*Y_WIDTH-1:i*Y_WIDTH];
			else
				assign sum[(i+2)*Y_WIDTH-1:(i+1)*Y_WIDTH] = sum[(i+1)*Y_WIDTH-1:i*Y_WIDTH] + (a_ext << i);
		end
		if (NEGATIVE)
			assign Y = {Y_WIDTH{1'b0}} - sum[(B_WIDTH+1)*Y_WIDTH-1:B_WIDTH*Y_WIDTH];
		else
			assign Y = sum[(B_WIDTH+1)*Y_WIDTH-1:B_WIDTH*Y_WIDTH];
	end else if ((&MASK_A) && !(&MASK_B)) begin
		// constant first: the same map with the operands swapped
		\$mul #(
			.A_SIGNED(B_SIGNED), .B_SIGNED(A_SIGNED),
			.A_WIDTH(B_WIDTH), .B_WIDTH(A_WIDTH), .Y_WIDTH(Y_WIDTH)
		) _TECHMAP_REPLACE_ (.A(B), .B(A), .Y(Y));
	end else begin
		wire _TECHMAP_FAIL_ = 1;
	end
	endgenerate
endmodule
