//! The whole runtime of the program, by hand rather than from cortex-m-rt
//! and cortex-m-semihosting: a vector table, a reset handler (FPU on, .data
//! copied, .bss zeroed, the stack painted), a fault handler, the MPU set-up,
//! semihosting calls (`bkpt 0xab`), a timer, and statics handed out once.

use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::ptr::{addr_of, read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, Ordering};

/// The word the reset handler fills the stack with; [`stack_used`] looks
/// for the deepest word that is no longer it.
const STACK_PAINT: u32 = 0x5AA5_5AA5;

// The vector table (at 0, where the core reads the initial stack pointer
// and the reset vector) and the reset handler. The handler enables the FPU
// first: every instruction after it may be a float one (Rust's code is
// built for the hard-float ABI).
global_asm!(
    r#"
    .syntax unified
    .thumb

    .section .vectors, "a", %progbits
    .p2align 2
    .word __stack_top
    .word reset
    .word fault             @ NMI
    .word fault             @ HardFault
    .word fault             @ MemManage
    .word fault             @ BusFault
    .word fault             @ UsageFault
    .word 0, 0, 0, 0
    .word fault             @ SVCall
    .word fault             @ DebugMonitor
    .word 0
    .word fault             @ PendSV
    .word fault             @ SysTick

    .section .text.reset, "ax", %progbits
    .global reset
    .type reset, %function
    .thumb_func
reset:
    @ CPACR: full access to CP10 and CP11 (the FPU), then wait for it.
    ldr r0, =0xE000ED88
    ldr r1, [r0]
    orr r1, r1, #0x00F00000
    str r1, [r0]
    dsb
    isb
    @ .data from its load address in flash.
    ldr r0, =__data_start
    ldr r1, =__data_end
    ldr r2, =__data_load
1:  cmp r0, r1
    bhs 2f
    ldr r3, [r2], #4
    str r3, [r0], #4
    b 1b
    @ .bss zeroed.
2:  ldr r0, =__bss_start
    ldr r1, =__bss_end
    movs r2, #0
3:  cmp r0, r1
    bhs 4f
    str r2, [r0], #4
    b 3b
    @ The stack painted, for its high-water mark (nothing is on it yet).
4:  ldr r0, =__stack_bottom
    ldr r1, =__stack_top
    ldr r2, ={paint}
5:  cmp r0, r1
    bhs 6f
    str r2, [r0], #4
    b 5b
6:  bl main_entry
    b .
    .size reset, . - reset
    .ltorg
"#,
    paint = const STACK_PAINT,
);

extern "C" {
    static __stack_bottom: u32;
    static __stack_top: u32;
}

/// Bytes of stack reserved by the linker script.
pub fn stack_size() -> usize {
    stack_top() - stack_bottom()
}

fn stack_bottom() -> usize {
    addr_of!(__stack_bottom) as usize
}

fn stack_top() -> usize {
    addr_of!(__stack_top) as usize
}

/// Deepest stack use so far, in bytes (the painted words left untouched at
/// the bottom are unused). `stack_size()` means it overflowed.
pub fn stack_used() -> usize {
    let mut at = stack_bottom();
    while at < stack_top() {
        // SAFETY: an aligned word inside the stack region of the linker
        // script; volatile, as the compiler knows nothing of the painting.
        if unsafe { read_volatile(at as *const u32) } != STACK_PAINT {
            break;
        }
        at += 4;
    }
    stack_top() - at
}

/// NMI, HardFault and the other exceptions (none is expected: no interrupt
/// is enabled, and a write to the model or the code faults by the MPU):
/// says which and exits with a failure code.
#[no_mangle]
extern "C" fn fault() -> ! {
    let ipsr: u32;
    // SAFETY: reads the exception number; no memory is touched.
    unsafe { asm!("mrs {}, ipsr", out(reg) ipsr, options(nomem, nostack)) };
    // SAFETY: the System Control Block's fault status (CFSR, HFSR) and
    // address (MMFAR, BFAR) registers, read-only here.
    let (cfsr, hfsr, mmfar, bfar) = unsafe {
        (
            read_volatile(0xE000_ED28 as *const u32),
            read_volatile(0xE000_ED2C as *const u32),
            read_volatile(0xE000_ED34 as *const u32),
            read_volatile(0xE000_ED38 as *const u32),
        )
    };
    let mut err = Console::stderr();
    let _ = core::fmt::write(
        &mut err,
        format_args!(
            "nanollama-cortex-m: exception {ipsr}: CFSR {cfsr:#010x} HFSR {hfsr:#010x} \
             MMFAR {mmfar:#010x} BFAR {bfar:#010x}\n"
        ),
    );
    exit(3)
}

/// MPU regions: SSRAM1 (code and constants, with its mirror) and PSRAM (the
/// model) read-only, the model also never executed; everything else keeps
/// the default map (PRIVDEFENA). A stray write to either becomes a fault.
pub fn protect_flash_and_model() {
    const CTRL: *mut u32 = 0xE000_ED94 as *mut u32;
    const RNR: *mut u32 = 0xE000_ED98 as *mut u32;
    const RBAR: *mut u32 = 0xE000_ED9C as *mut u32;
    const RASR: *mut u32 = 0xE000_EDA0 as *mut u32;
    const RO: u32 = 0b110 << 24; // AP: read-only, privileged or not
    const XN: u32 = 1 << 28;
    const NORMAL: u32 = 1 << 17; // TEX 0, C 1, B 0: normal memory
    const ENABLE: u32 = 1;
    // (base, RASR): SIZE field n covers 2^(n+1) bytes, base aligned to it.
    let regions = [
        (0x0000_0000, RO | NORMAL | (22 << 1) | ENABLE), // 8 MB: SSRAM1 + mirror
        (0x2100_0000, XN | RO | NORMAL | (23 << 1) | ENABLE), // 16 MB: PSRAM
    ];
    for (i, (base, rasr)) in regions.into_iter().enumerate() {
        // SAFETY: the architected MPU registers of the ARMv7-M System
        // Control Space; the regions only take rights away.
        unsafe {
            write_volatile(RNR, i as u32);
            write_volatile(RBAR, base);
            write_volatile(RASR, rasr);
        }
    }
    // SAFETY: as above; PRIVDEFENA (bit 2) keeps the default map for the
    // rest, ENABLE (bit 0) turns it on; the barriers make it take effect.
    unsafe {
        write_volatile(CTRL, (1 << 2) | 1);
        asm!("dsb", "isb", options(nostack));
    }
}

/// A semihosting call: operation `op`, parameter block `args`.
fn semihost(op: u32, args: *const u32) -> u32 {
    let r: u32;
    // SAFETY: `bkpt 0xab` is the M-profile semihosting trap; QEMU (with
    // -semihosting-config enable=on) reads the block at `args`, which the
    // callers keep alive for the call, and returns in r0.
    unsafe {
        asm!("bkpt 0xab", inout("r0") op => r, in("r1") args, options(nostack));
    }
    r
}

const SYS_OPEN: u32 = 0x01;
const SYS_WRITE: u32 = 0x05;
const SYS_EXIT_EXTENDED: u32 = 0x20;
const ADP_STOPPED_APPLICATION_EXIT: u32 = 0x20026;

/// Ends the program: QEMU exits with `code`.
pub fn exit(code: u32) -> ! {
    let args = [ADP_STOPPED_APPLICATION_EXIT, code];
    semihost(SYS_EXIT_EXTENDED, args.as_ptr());
    loop {
        core::hint::spin_loop();
    }
}

/// The host's standard output or error (the semihosting file ":tt").
pub struct Console(u32);

impl Console {
    fn open(mode: u32) -> Self {
        let name = b":tt\0";
        let args = [name.as_ptr() as u32, mode, 3];
        Self(semihost(SYS_OPEN, args.as_ptr()))
    }
    /// Standard output (":tt" opened "w").
    pub fn stdout() -> Self {
        Self::open(4)
    }
    /// Standard error (":tt" opened "a").
    pub fn stderr() -> Self {
        Self::open(8)
    }
    pub fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let args = [self.0, bytes.as_ptr() as u32, bytes.len() as u32];
        semihost(SYS_WRITE, args.as_ptr());
    }
}

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write(s.as_bytes());
        Ok(())
    }
}

/// The CMSDK APB timer 0 of the board, free-running down from 2^32 - 1 at
/// the 25 MHz peripheral clock of QEMU's virtual time. Under `-icount
/// shift=0` that time advances 1 ns per instruction, so a tick is 40
/// instructions; [`calibrate`] measures it rather than trusting it.
const TIMER0: usize = 0x4000_0000;

pub fn timer_start() {
    let (ctrl, value, reload) = (
        TIMER0 as *mut u32,
        (TIMER0 + 4) as *mut u32,
        (TIMER0 + 8) as *mut u32,
    );
    // SAFETY: the timer's CTRL, VALUE and RELOAD registers (mps2-an386
    // memory map); stop, load, start with no interrupt.
    unsafe {
        write_volatile(ctrl, 0);
        write_volatile(reload, u32::MAX);
        write_volatile(value, u32::MAX);
        write_volatile(ctrl, 1);
    }
}

/// Ticks since [`timer_start`] (wraps after 2^32, 171 s of virtual time).
pub fn ticks() -> u32 {
    // SAFETY: the timer's VALUE register, read-only here.
    u32::MAX - unsafe { read_volatile((TIMER0 + 4) as *const u32) }
}

/// Instructions in [`calibrate`]'s loop.
pub const CALIBRATION_INSTRUCTIONS: u32 = 2 * 1_000_000;

/// Ticks taken by a loop of exactly [`CALIBRATION_INSTRUCTIONS`]
/// instructions (`subs` and `bne`, a million times).
pub fn calibrate() -> u32 {
    let t0 = ticks();
    // SAFETY: a register-only countdown loop.
    unsafe {
        asm!(
            "2:",
            "subs {n}, {n}, #1",
            "bne 2b",
            n = inout(reg) CALIBRATION_INSTRUCTIONS / 2 => _,
            options(nomem, nostack),
        );
    }
    ticks().wrapping_sub(t0)
}

/// A buffer in .bss, 64-byte aligned as nanollama wants its memory, handed
/// out at most once.
#[repr(C, align(64))]
pub struct Static<T> {
    cell: UnsafeCell<T>,
    taken: AtomicBool,
}

// SAFETY: the only access is through `take`, which gives out one reference
// ever.
unsafe impl<T> Sync for Static<T> {}

impl<T> Static<T> {
    pub const fn new(v: T) -> Self {
        Self {
            cell: UnsafeCell::new(v),
            taken: AtomicBool::new(false),
        }
    }
    /// The buffer, the first time; `None` after.
    // A `&mut` out of `&self` is the point: the flag makes it the only one.
    #[allow(clippy::mut_from_ref)]
    pub fn take(&'static self) -> Option<&'static mut T> {
        if self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: the flag was clear, so no other reference exists, and
        // none will be made: it is set for good.
        Some(unsafe { &mut *self.cell.get() })
    }
}
