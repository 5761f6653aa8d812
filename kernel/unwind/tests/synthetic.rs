//! Hand-assembled CIE/FDE and LSDA bytes: each CFA instruction and LSDA case on its own, with exact expectations.

use memory_structs::VirtualAddress;
use unwind::{
    CatchType, EhAction, EndReason, FrameCursor, FrameIter, LsdaError, RA, RBP, RBX, RSP, RegisterError, Registers,
    SliceStack, StepError, UnwindError, UnwindInfoDescription, UnwindRegistry, find_action,
};

/// Appends a CIE/FDE record: 4-byte length, then `body`, padded with DW_CFA_nop to a multiple of 8.
fn record(section: &mut Vec<u8>, body: &[u8]) {
    let mut body = body.to_vec();
    while !(body.len() + 4).is_multiple_of(8) {
        body.push(0);
    }
    section.extend_from_slice(&(body.len() as u32).to_le_bytes());
    section.extend_from_slice(&body);
}

/// A CIE ("zR", FDE pointers DW_EH_PE_udata8 = absolute), code alignment 1, data alignment -8, RA column 16,
/// initial rules: DW_CFA_def_cfa rsp+8, DW_CFA_offset ra at cfa-8.
fn cie(section: &mut Vec<u8>) {
    record(section, &[0, 0, 0, 0, 1, b'z', b'R', 0, 1, 0x78, 16, 1, 0x04, 0x0c, 7, 8, 0x90, 1]);
}

/// An FDE for `start..start + length` with `instructions`, pointing back to the CIE at offset 0.
fn fde(section: &mut Vec<u8>, start: u64, length: u64, instructions: &[u8]) {
    let cie_pointer = (section.len() + 4) as u32;
    let mut body = cie_pointer.to_le_bytes().to_vec();
    body.extend_from_slice(&start.to_le_bytes());
    body.extend_from_slice(&length.to_le_bytes());
    body.push(0);
    body.extend_from_slice(instructions);
    record(section, &body);
}

/// Function 1 at 0x1000..0x1100, with every row kind:
/// 0x1000: cfa = rsp+8
/// 0x1001: cfa = rsp+16, rbp at cfa-16           (push rbp)
/// 0x1004: cfa = rbp+16                          (mov rbp, rsp)
/// 0x1008: remember; cfa = rsp+8                 (epilogue)
/// 0x100a: restore: cfa = rbp+16, rbp at cfa-16
/// 0x100c: rbx = value of rdx (register rule); rsi = cfa-32 (val_offset)
const FUNCTION_1: [u8; 20] = [
    0x41, 0x0e, 16, 0x86, 2, // advance 1; def_cfa_offset 16; offset rbp, 2*-8
    0x43, 0x0d, 6, // advance 3; def_cfa_register rbp
    0x44, 0x0a, 0x0c, 7, 8, // advance 4; remember_state; def_cfa rsp+8
    0x42, 0x0b, // advance 2; restore_state
    0x42, 0x09, 3, 1,    // advance 2; register rbx <- rdx
    0x00, // nop (val_offset below would need DWARF 3 opcode 0x14; kept simple)
];

fn section() -> Vec<u8> {
    let mut section = Vec::new();
    cie(&mut section);
    fde(&mut section, 0x1000, 0x100, &FUNCTION_1);
    // Function 2 at 0x2000..0x2010: only the CIE's rules (a leaf).
    fde(&mut section, 0x2000, 0x10, &[]);
    // Function 3 at 0x3000..0x3010: CFA = rsp + 0, which never grows.
    fde(&mut section, 0x3000, 0x10, &[0x0e, 0]);
    // Function 4 at 0x4000..0x4010: DW_CFA_def_cfa_expression (unsupported).
    fde(&mut section, 0x4000, 0x10, &[0x0f, 1, 0x77]);
    // An FDE outside the text range: skipped.
    fde(&mut section, 0x9000, 0x10, &[]);
    section
}

fn registry_with(section: Vec<u8>, text: std::ops::Range<usize>) -> Result<UnwindRegistry, RegisterError> {
    let bytes: &'static [u8] = section.leak();
    let start = bytes.as_ptr() as usize;
    let registry = UnwindRegistry::new();
    let description = UnwindInfoDescription {
        name: "synthetic".into(),
        text: VirtualAddress::new(text.start)..VirtualAddress::new(text.end),
        eh_frame: VirtualAddress::new(start)..VirtualAddress::new(start + bytes.len()),
        gcc_except_tables: Vec::new(),
        owner: None,
    };
    // SAFETY: leaked bytes, never changed.
    unsafe { registry.register(description) }?;
    Ok(registry)
}

fn registry() -> UnwindRegistry {
    registry_with(section(), 0x1000..0x5000).unwrap()
}

fn registers(address: u64, stack_pointer: u64, rbp: u64) -> Registers {
    let mut registers = Registers::new();
    registers.set(RA, Some(address));
    registers.set(RSP, Some(stack_pointer));
    registers.set(RBP, Some(rbp));
    registers.set(RBX, Some(0xb0b0));
    registers.set(unwind::RDX, Some(0xd0d0));
    registers
}

/// One exact-PC step over a fake stack at 0x8000: [0x8000] saved rbp, [0x8008] return address.
fn step(
    registry: &UnwindRegistry,
    address: u64,
    stack_pointer: u64,
    rbp: u64,
) -> Result<(u64, Registers), UnwindError> {
    let words = [0xaaaa, 0x2004, 0];
    let stack = SliceStack { base: 0x8000, words: &words };
    let mut frames = FrameIter::new(registry, stack, FrameCursor::exact(registers(address, stack_pointer, rbp)));
    let frame = frames.next_frame()?.expect("a frame");
    Ok((frame.cfa, *frames.cursor().registers()))
}

#[test]
fn indexes_fdes_and_skips_those_outside_the_text() {
    let registry = registry();
    let entries = registry.entries();
    assert_eq!(entries.len(), 1);
    let info = &entries[0];
    assert_eq!(info.fdes().len(), 4);
    assert_eq!(info.skipped_fdes(), 1);
    assert_eq!(info.fde_for(0x1000).map(|fde| fde.function_start), Some(0x1000));
    assert_eq!(info.fde_for(0x10ff).map(|fde| fde.function_end), Some(0x1100));
    assert_eq!(info.fde_for(0x1100), None);
    assert_eq!(info.fde_for(0x2008).map(|fde| fde.function_start), Some(0x2000));
    assert_eq!(info.fde_for(0x0fff), None);
}

#[test]
fn evaluates_each_cfa_instruction() {
    let registry = registry();
    // Entry: cfa = rsp+8; the return address is the only saved register; rbp keeps its value (callee-saved).
    let (cfa, caller) = step(&registry, 0x1000, 0x8008, 0x1234).unwrap();
    assert_eq!(
        (cfa, caller.get(RA), caller.get(RSP), caller.get(RBP)),
        (0x8010, Some(0x2004), Some(0x8010), Some(0x1234))
    );
    // After push rbp: cfa = rsp+16, rbp restored from cfa-16.
    let (cfa, caller) = step(&registry, 0x1002, 0x8000, 0x1234).unwrap();
    assert_eq!((cfa, caller.get(RBP), caller.get(RA)), (0x8010, Some(0xaaaa), Some(0x2004)));
    // cfa = rbp+16: the stack pointer no longer matters.
    let (cfa, caller) = step(&registry, 0x1005, 0x7000, 0x8000).unwrap();
    assert_eq!((cfa, caller.get(RBP)), (0x8010, Some(0xaaaa)));
    // Remembered state, then cfa = rsp+8 (rbp's rule survives the def_cfa).
    let (cfa, caller) = step(&registry, 0x1009, 0x8008, 0x1).unwrap();
    assert_eq!((cfa, caller.get(RBP)), (0x8010, Some(0xaaaa)));
    // Restored state: cfa = rbp+16 again.
    let (cfa, _) = step(&registry, 0x100b, 0x7000, 0x8000).unwrap();
    assert_eq!(cfa, 0x8010);
    // Register rule: the caller's rbx is this frame's rdx; caller-saved registers become unknown.
    let (_, caller) = step(&registry, 0x100d, 0x7000, 0x8000).unwrap();
    assert_eq!((caller.get(RBX), caller.get(unwind::RDX)), (Some(0xd0d0), None));
}

#[test]
fn walks_two_synthetic_frames_to_the_outermost() {
    let registry = registry();
    // Frame 0 at 0x1002 (exact) returns to 0x2004 (function 2), whose return address slot holds 0: the end.
    let words = [0xaaaa, 0x2004, 0];
    let stack = SliceStack { base: 0x8000, words: &words };
    let mut frames = FrameIter::new(&registry, stack, FrameCursor::exact(registers(0x1002, 0x8000, 0x1)));
    let first = frames.next_frame().unwrap().unwrap();
    assert_eq!((first.function_start, first.cfa, first.lookup_address, first.exact), (0x1000, 0x8010, 0x1002, true));
    let second = frames.next_frame().unwrap().unwrap();
    // A return address is looked up as address - 1.
    assert_eq!(
        (second.function_start, second.lookup_address, second.cfa, second.exact),
        (0x2000, 0x2003, 0x8018, false)
    );
    assert!(frames.next_frame().unwrap().is_none());
    assert_eq!(frames.end_reason(), Some(EndReason::OutermostFrame));
}

#[test]
fn reports_errors_and_clean_ends() {
    let registry = registry();
    let stack = SliceStack { base: 0x7ff0, words: &[0; 6] };
    // CFA = rsp: does not grow, would loop.
    let mut frames = FrameIter::new(&registry, stack, FrameCursor::exact(registers(0x3004, 0x8000, 0)));
    assert!(matches!(frames.next_frame(), Err(UnwindError::NonIncreasingCfa { cfa: 0x8000, .. })));
    assert!(frames.next_frame().unwrap().is_none(), "the walk is over after an error");
    // CFA expression.
    let mut frames = FrameIter::new(&registry, stack, FrameCursor::exact(registers(0x4004, 0x8000, 0)));
    assert!(matches!(frames.next_frame(), Err(UnwindError::Step(StepError::CfaExpression { address: 0x4004 }))));
    // The return address slot is outside the fake stack.
    let mut frames = FrameIter::new(&registry, stack, FrameCursor::exact(registers(0x2004, 0x9000, 0)));
    assert!(matches!(frames.next_frame(), Err(UnwindError::Step(StepError::Memory(_)))));
    // Inside the text range but without an FDE; outside every range.
    let mut frames = FrameIter::new(&registry, stack, FrameCursor::exact(registers(0x1800, 0x8000, 0)));
    assert!(frames.next_frame().unwrap().is_none());
    assert_eq!(frames.end_reason(), Some(EndReason::NoFde { address: 0x1800 }));
    let mut frames = FrameIter::new(&registry, stack, FrameCursor::exact(registers(0x6000, 0x8000, 0)));
    assert!(frames.next_frame().unwrap().is_none());
    assert_eq!(frames.end_reason(), Some(EndReason::NoUnwindInfo { address: 0x6000 }));
    // Missing RSP.
    let mut registers = Registers::new();
    registers.set(RA, Some(0x1000));
    let mut frames = FrameIter::new(&registry, stack, FrameCursor::exact(registers));
    assert_eq!(frames.next_frame().unwrap_err(), UnwindError::MissingRegisters);
}

#[test]
fn registration_rejects_overlaps_empty_ranges_and_bad_eh_frame() {
    let registry = registry();
    let bytes: &'static [u8] = section().leak();
    let start = bytes.as_ptr() as usize;
    let description = |text: std::ops::Range<usize>| UnwindInfoDescription {
        name: "second".into(),
        text: VirtualAddress::new(text.start)..VirtualAddress::new(text.end),
        eh_frame: VirtualAddress::new(start)..VirtualAddress::new(start + bytes.len()),
        gcc_except_tables: Vec::new(),
        owner: None,
    };
    // SAFETY: leaked bytes, never changed (also for the two registrations below).
    let overlap = unsafe { registry.register(description(0x4fff..0x6000)) };
    assert!(matches!(overlap, Err(RegisterError::Overlap { ref existing_name, .. }) if existing_name == "synthetic"));
    // SAFETY: as above.
    let empty = unsafe { registry.register(description(0x6000..0x6000)) };
    assert_eq!(empty.unwrap_err(), RegisterError::EmptyRange { which: "text" });
    // SAFETY: as above.
    let adjacent = unsafe { registry.register(description(0x5000..0x6000)) }.unwrap();
    assert_eq!(registry.entries().len(), 2);
    assert_eq!(registry.find(0x5000).unwrap().map(|info| info.id()), Some(adjacent.id()));
    assert_eq!(registry.find(0x4fff).unwrap().map(|info| info.name().to_string()), Some("synthetic".into()));
    // A truncated section: the last record's length runs past the end.
    let mut truncated = section();
    truncated.truncate(truncated.len() - 3);
    assert!(matches!(registry_with(truncated, 0x1000..0x5000), Err(RegisterError::EhFrame { .. })));
}

/// An LSDA: LPStart omitted, TType udata4 with one catch-all entry and one real entry, uleb128 call sites.
/// Call sites (function at 0x1000): [0x10, 0x18) pad 0x80 cleanup; [0x20, 0x28) no pad; [0x30, 0x38) pad 0x90
/// action 1 (catch, filter 1 = catch-all); [0x40, 0x48) pad 0xa0 action 3 (filter -1); [0x50, 0x58) pad 0xb0
/// action 5 (catch filter 2 = a real type).
fn lsda() -> Vec<u8> {
    let call_sites: Vec<u8> = vec![
        0x10, 8, 0x80, 1, 0, // cleanup
        0x20, 8, 0, 0, // no landing pad
        0x30, 8, 0x90, 1, 1, // catch-all
        0x40, 8, 0xa0, 1, 3, // filter
        0x50, 8, 0xb0, 1, 5, // typed catch
    ];
    let actions: Vec<u8> = vec![1, 0, 0x7f, 0, 2, 0];
    let types: Vec<u8> = [0x1234_5678_u32.to_le_bytes(), 0_u32.to_le_bytes()].concat();
    let mut bytes = vec![0xff, 0x03];
    // TType offset: from after this uleb to the end of the type table.
    let after_offset = 3 + 1 + 1 + call_sites.len() + actions.len() + types.len();
    bytes.push((after_offset - 3) as u8);
    bytes.push(0x01);
    bytes.push(call_sites.len() as u8);
    bytes.extend(call_sites);
    bytes.extend(actions);
    bytes.extend(types);
    bytes
}

#[test]
fn lsda_call_site_lookup() {
    let lsda = lsda();
    let action = |address| find_action(&lsda, 0x5000, 0x1000, address);
    assert_eq!(action(0x1010), Ok(EhAction::Cleanup { landing_pad: 0x1080 }));
    assert_eq!(action(0x1017), Ok(EhAction::Cleanup { landing_pad: 0x1080 }));
    assert_eq!(action(0x1018), Ok(EhAction::NotFound));
    assert_eq!(action(0x1024), Ok(EhAction::None));
    assert_eq!(action(0x1030), Ok(EhAction::Catch { landing_pad: 0x1090, type_filter: 1, catch_type: CatchType::All }));
    assert_eq!(action(0x1044), Ok(EhAction::Filter { landing_pad: 0x10a0, type_filter: -1 }));
    assert_eq!(
        action(0x1050),
        Ok(EhAction::Catch { landing_pad: 0x10b0, type_filter: 2, catch_type: CatchType::Direct(0x1234_5678) })
    );
    assert_eq!(action(0x1008), Ok(EhAction::NotFound));
    assert_eq!(action(0x2000), Ok(EhAction::NotFound));
    assert_eq!(EhAction::Filter { landing_pad: 1, type_filter: -1 }.landing_pad(), Some((1, u64::MAX)));
    assert_eq!(EhAction::None.landing_pad(), None);
}

#[test]
fn lsda_with_udata4_call_sites_and_lpstart() {
    // LPStart absptr 0x7000, no type table, udata4 call sites: [0x10, 0x20) pad 0x40 cleanup.
    let mut bytes = vec![0x00];
    bytes.extend_from_slice(&0x7000_u64.to_le_bytes());
    bytes.extend_from_slice(&[0xff, 0x03, 13]);
    for value in [0x10_u32, 0x10, 0x40] {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    bytes.push(0);
    assert_eq!(find_action(&bytes, 0, 0x1000, 0x1015), Ok(EhAction::Cleanup { landing_pad: 0x7040 }));
}

#[test]
fn truncated_and_malformed_lsdas_are_errors() {
    let lsda = lsda();
    // Every prefix that cuts the header, the call-site table, the action table or the type entry read is an error,
    // never a panic (filter 2's entry is the second-to-last 4 bytes).
    for length in 0..lsda.len() - 4 {
        let result = find_action(&lsda[..length], 0x5000, 0x1000, 0x1050);
        assert!(result.is_err(), "prefix {length}: {result:?}");
    }
    assert_eq!(find_action(&[], 0, 0, 0), Err(LsdaError::Truncated { offset: 0 }));
    // An unsupported LPStart encoding (textrel).
    assert!(matches!(
        find_action(&[0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0xff], 0, 0, 0),
        Err(LsdaError::UnsupportedEncoding { encoding: 0x20, .. })
    ));
    // A call-site table longer than the data.
    assert_eq!(find_action(&[0xff, 0xff, 0x01, 0x7f], 0, 0, 0), Err(LsdaError::Truncated { offset: 4 }));
    // An overlong uleb128.
    let overlong = [0xff, 0xff, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    assert!(matches!(find_action(&overlong, 0, 0, 0), Err(LsdaError::Overflow { offset: 3 })));
    // A type filter pointing before the LSDA start.
    let mut far = vec![0xff, 0x03, 0x06, 0x01, 4, 0x00, 8, 0x10, 0x01];
    far.extend_from_slice(&[0x3f, 0]);
    assert!(find_action(&far, 0, 0x1000, 0x1000).is_err());
}

/// `DW_CFA_GNU_args_size` (0x2e): the bytes of call arguments pushed at an instruction, which a landing pad of the
/// frame expects popped; reported per frame as `Frame::args_size`.
#[test]
fn reports_the_pushed_argument_size_of_each_row() {
    let mut section = Vec::new();
    cie(&mut section);
    // Function at 0x5000..0x5010: args_size 16 from 0x5004, 0 again from 0x5008.
    fde(&mut section, 0x5000, 0x10, &[0x44, 0x2e, 16, 0x44, 0x2e, 0]);
    let registry = registry_with(section, 0x5000..0x6000).unwrap();
    let words = [0, 0];
    let args_size = |address| {
        let stack = SliceStack { base: 0x8000, words: &words };
        let mut frames = FrameIter::new(&registry, stack, FrameCursor::exact(registers(address, 0x8000, 0x1)));
        frames.next_frame().unwrap().unwrap().args_size
    };
    assert_eq!((args_size(0x5001), args_size(0x5005), args_size(0x5009)), (0, 16, 0));
}
