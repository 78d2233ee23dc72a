/*
 * context_x86_64.S - the register switch for x86-64 System V.
 *
 * braid__ctx_switch(from, to) pushes the callee-saved state of the running
 * context onto its own stack, stores the stack pointer in from->sp, loads
 * to->sp and pops the state saved there.  No system call, no signal mask.
 *
 * Saved frame, at ctx->sp (low address first), 64 bytes:
 *    +0  MXCSR (4 bytes)          +4  x87 control word (2 bytes), +6 pad
 *        (both are compared with the running context's, and loaded only
 *        if one differs)
 *    +8  r15    +16 r14    +24 r13    +32 r12    +40 rbx    +48 rbp
 *   +56  return address (where the switched-out context resumes)
 *
 * Invariants: a saved ctx->sp is 16-byte aligned minus 8 (the frame sits
 * below the return address of a call made on an aligned stack), i.e.
 * (sp + 64) % 16 == 0 for a switched-out context and for a fresh one made
 * by braid__ctx_make (see context.c).  The x87 register stack is empty at
 * every switch, as the ABI demands at calls, so only its control word is
 * state.  DF is clear at every call and needs no saving.
 *
 * braid__ctx_trampoline is where a fresh context first "returns" to: r12
 * holds entry, r13 its argument, rbp is 0.  It calls entry(arg) on an
 * aligned stack; its CFI marks the return address undefined so unwinders
 * (and frame-pointer walkers, via rbp == 0) stop here.  entry must not
 * return; if it does, ud2 traps.
 *
 * CET: endbr64 marks the indirect-branch targets, but no GNU property note
 * is emitted: the switch changes stacks with ret, which a shadow stack
 * forbids, so the linked object must not claim SHSTK compatibility.
 */
#if defined(__x86_64__) && !defined(BRAID_CONTEXT_UCONTEXT)

	.text

/* void braid__ctx_switch(braid__ctx *from, braid__ctx *to) */
	.globl	braid__ctx_switch
	.hidden	braid__ctx_switch
	.type	braid__ctx_switch, @function
	.p2align 4
braid__ctx_switch:
	.cfi_startproc
	endbr64
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	pushq	%rbx
	.cfi_adjust_cfa_offset 8
	pushq	%r12
	.cfi_adjust_cfa_offset 8
	pushq	%r13
	.cfi_adjust_cfa_offset 8
	pushq	%r14
	.cfi_adjust_cfa_offset 8
	pushq	%r15
	.cfi_adjust_cfa_offset 8
	subq	$8, %rsp
	.cfi_adjust_cfa_offset 8
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movl	(%rsp), %eax		/* ours, to compare with theirs: one */
	movzwl	4(%rsp), %ecx		/* load per store, so both forward */

	movq	%rsp, (%rdi)		/* from->sp = rsp */
	movq	(%rsi), %rsp		/* rsp = to->sp; same frame layout */

	cmpl	(%rsp), %eax		/* loading the control registers costs */
	jne	2f			/* more than comparing: skip when equal */
	cmpw	4(%rsp), %cx
	je	1f
2:	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
1:
	addq	$8, %rsp
	.cfi_adjust_cfa_offset -8
	popq	%r15
	.cfi_adjust_cfa_offset -8
	popq	%r14
	.cfi_adjust_cfa_offset -8
	popq	%r13
	.cfi_adjust_cfa_offset -8
	popq	%r12
	.cfi_adjust_cfa_offset -8
	popq	%rbx
	.cfi_adjust_cfa_offset -8
	popq	%rbp
	.cfi_adjust_cfa_offset -8
	ret
	.cfi_endproc
	.size	braid__ctx_switch, .-braid__ctx_switch

/* First code run by a context made by braid__ctx_make; never called. */
	.globl	braid__ctx_trampoline
	.hidden	braid__ctx_trampoline
	.type	braid__ctx_trampoline, @function
	.p2align 4
braid__ctx_trampoline:
	.cfi_startproc
	.cfi_undefined rip
	movq	%r13, %rdi		/* arg */
	callq	*%r12			/* entry(arg); rsp % 16 == 0 here */
	ud2				/* entry returned: forbidden */
	.cfi_endproc
	.size	braid__ctx_trampoline, .-braid__ctx_trampoline

#endif

#if defined(__ELF__)
	.section .note.GNU-stack,"",%progbits	/* non-executable stack */
#endif
