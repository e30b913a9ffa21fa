/*
 * The unwinder of the MIPS binaries (packaging/build-release builds it as
 * libunwind.a, with -msoft-float): none at all.
 *
 * Rust's standard library for musl links one by that name. GCC's own
 * (libgcc_eh.a) is built for hard float in Debian, and saves and restores
 * floating-point registers, which a router without an FPU (and without the
 * kernel's FPU emulator, as OpenWrt builds it) cannot run. The program
 * aborts on a panic, so nothing ever unwinds; what is left is walking the
 * stack for a backtrace (RUST_BACKTRACE), which here finds no frame.
 */

struct _Unwind_Context;
struct _Unwind_Exception;
typedef int (*trace_fn)(struct _Unwind_Context *, void *);

enum {
	URC_FATAL_PHASE1_ERROR = 3,
	URC_END_OF_STACK = 5,
};

int _Unwind_Backtrace(trace_fn trace, void *arg)
{
	(void)trace;
	(void)arg;
	return URC_END_OF_STACK;
}

int _Unwind_RaiseException(struct _Unwind_Exception *exception)
{
	(void)exception;
	return URC_FATAL_PHASE1_ERROR;
}

void _Unwind_Resume(struct _Unwind_Exception *exception)
{
	(void)exception;
	__builtin_trap();
}

void _Unwind_DeleteException(struct _Unwind_Exception *exception)
{
	(void)exception;
}

unsigned long _Unwind_GetIP(struct _Unwind_Context *context)
{
	(void)context;
	return 0;
}

unsigned long _Unwind_GetIPInfo(struct _Unwind_Context *context, int *before)
{
	(void)context;
	*before = 0;
	return 0;
}

unsigned long _Unwind_GetCFA(struct _Unwind_Context *context)
{
	(void)context;
	return 0;
}

unsigned long _Unwind_GetRegionStart(struct _Unwind_Context *context)
{
	(void)context;
	return 0;
}

unsigned long _Unwind_GetTextRelBase(struct _Unwind_Context *context)
{
	(void)context;
	return 0;
}

unsigned long _Unwind_GetDataRelBase(struct _Unwind_Context *context)
{
	(void)context;
	return 0;
}

void *_Unwind_GetLanguageSpecificData(struct _Unwind_Context *context)
{
	(void)context;
	return 0;
}

void _Unwind_SetGR(struct _Unwind_Context *context, int reg, unsigned long value)
{
	(void)context;
	(void)reg;
	(void)value;
}

void _Unwind_SetIP(struct _Unwind_Context *context, unsigned long value)
{
	(void)context;
	(void)value;
}

void *_Unwind_FindEnclosingFunction(void *pc)
{
	(void)pc;
	return 0;
}
