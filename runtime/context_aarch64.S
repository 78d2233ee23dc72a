/*
 * context_aarch64.S - the register switch for AArch64 (AAPCS64).
 *
 * braid__ctx_switch(from, to) stores the callee-saved state of the running
 * context on its own stack, stores sp in from->sp, loads to->sp and
 * reloads the state saved there, then returns through the loaded x30.
 * No system call, no signal mask.
 *
 * Saved frame, at ctx->sp (low address first), 176 bytes:
 *     +0 x19   +8 x20  +16 x21  +24 x22  +32 x23  +40 x24  +48 x25
 *    +56 x26  +64 x27  +72 x28  +80 x29 (fp)  +88 x30 (lr: resume address)
 *    +96 d8  +104 d9  +112 d10 +120 d11 +128 d12 +136 d13 +144 d14 +152 d15
 *   +160 FPCR (8 bytes)  +168 pad
 *
 * Invariants: ctx->sp is 16-byte aligned (sp always is on AArch64), and
 * sp + 176 is the caller's sp at the call.  Only the low 64 bits of v8-v15
 * are callee-saved (AAPCS64), so d8-d15 suffice.  FPSR (sticky flags) is
 * not part of the context, as FE flags are not preserved across calls.
 * FPCR is written only when it differs: msr fpcr serialises on some cores.
 *
 * braid__ctx_trampoline is where a fresh context first "returns" to: x19
 * holds entry, x20 its argument, x29 is 0.  It calls entry(arg) with lr
 * and fp zeroed so that frame-record walkers and CFI unwinders (the return
 * address is marked undefined) stop here.  entry must not return; if it
 * does, brk traps.
 *
 * BTI: braid__ctx_switch starts with "bti c" (hint space, a no-op on older
 * cores).  No GNU property note is emitted, so linking this object does
 * not turn BTI enforcement on for the program.
 */
#if defined(__aarch64__) && !defined(BRAID_CONTEXT_UCONTEXT)

	.text

/* void braid__ctx_switch(braid__ctx *from, braid__ctx *to) */
	.globl	braid__ctx_switch
	.hidden	braid__ctx_switch
	.type	braid__ctx_switch, %function
	.p2align 4
braid__ctx_switch:
	.cfi_startproc
	hint	#34			/* bti c */
	sub	sp, sp, #176
	.cfi_adjust_cfa_offset 176
	stp	x19, x20, [sp, #0]
	stp	x21, x22, [sp, #16]
	stp	x23, x24, [sp, #32]
	stp	x25, x26, [sp, #48]
	stp	x27, x28, [sp, #64]
	stp	x29, x30, [sp, #80]
	stp	d8,  d9,  [sp, #96]
	stp	d10, d11, [sp, #112]
	stp	d12, d13, [sp, #128]
	stp	d14, d15, [sp, #144]
	mrs	x9, fpcr
	str	x9, [sp, #160]

	mov	x10, sp
	str	x10, [x0]		/* from->sp = sp */
	ldr	x10, [x1]
	mov	sp, x10			/* sp = to->sp; same frame layout */

	ldr	x10, [sp, #160]
	cmp	x9, x10
	b.eq	1f
	msr	fpcr, x10
1:
	ldp	x19, x20, [sp, #0]
	ldp	x21, x22, [sp, #16]
	ldp	x23, x24, [sp, #32]
	ldp	x25, x26, [sp, #48]
	ldp	x27, x28, [sp, #64]
	ldp	x29, x30, [sp, #80]
	ldp	d8,  d9,  [sp, #96]
	ldp	d10, d11, [sp, #112]
	ldp	d12, d13, [sp, #128]
	ldp	d14, d15, [sp, #144]
	add	sp, sp, #176
	.cfi_adjust_cfa_offset -176
	ret
	.cfi_endproc
	.size	braid__ctx_switch, .-braid__ctx_switch

/* First code run by a context made by braid__ctx_make; never called. */
	.globl	braid__ctx_trampoline
	.hidden	braid__ctx_trampoline
	.type	braid__ctx_trampoline, %function
	.p2align 4
braid__ctx_trampoline:
	.cfi_startproc
	.cfi_undefined x30
	mov	x29, #0
	mov	x30, #0
	mov	x0, x20			/* arg */
	blr	x19			/* entry(arg); sp % 16 == 0 */
	brk	#0x3e8			/* entry returned: forbidden */
	.cfi_endproc
	.size	braid__ctx_trampoline, .-braid__ctx_trampoline

#endif

#if defined(__ELF__)
	.section .note.GNU-stack,"",%progbits	/* non-executable stack */
#endif
