//! Walking real frames: LLVM's `.eh_frame` for the kernel target (the fixture cell, loaded into low host memory)
//! and this executable's own, from registers captured inside a host callback the fixture calls.

mod common;

use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::Instant;

use common::{LoadedFixture, function_range, loaded_fixture, register_fixture, register_host};
use unwind::{
    DirectMemory, EndReason, Frame, FrameCursor, FrameIter, RBP, RSP, SymbolInfo, UnwindError, UnwindRegistry,
    with_current_registers, write_backtrace,
};

type Callback = extern "C-unwind" fn(u64) -> u64;

extern "C-unwind" fn unreachable_resume(_exception: *mut u8) {
    std::process::abort();
}

fn fixture() -> &'static LoadedFixture {
    loaded_fixture(unreachable_resume as *const () as usize)
}

/// A registry with the host executable and the fixture.
fn registry() -> &'static UnwindRegistry {
    static REGISTRY: OnceLock<UnwindRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let registry = UnwindRegistry::new();
        register_host(&registry);
        register_fixture(&registry, fixture());
        registry
    })
}

/// A fixture function by hash-free path.
fn fixture_function(path: &str) -> extern "C-unwind" fn(u64, Callback, u64) -> u64 {
    let address = fixture().namespace.find_function(common::CELL, path).unwrap().value();
    // SAFETY: the fixture's recurse/realigned are `extern "C-unwind" fn(u64, Callback, u64) -> u64`, loaded and
    // relocated at `address`.
    unsafe { std::mem::transmute::<usize, extern "C-unwind" fn(u64, Callback, u64) -> u64>(address) }
}

/// A walk's frames and how it ended.
type Walk = (Vec<Frame>, Result<Option<EndReason>, UnwindError>);

thread_local! {
    /// The last walk's frames and how it ended (an error is kept, not panicked on: a panic cannot unwind
    /// through the fixture's frames, which libgcc does not know).
    static WALK: RefCell<Walk> = const { RefCell::new((Vec::new(), Ok(None))) };
}

fn walk(registry: &UnwindRegistry, limit: usize) -> Walk {
    with_current_registers(|registers| {
        // SAFETY: the walked frames are live frames of this thread's stack with registered, well-formed CFI.
        let memory = unsafe { DirectMemory::unbounded() };
        let mut frames = FrameIter::new(registry, memory, FrameCursor::after_call(*registers)).with_limit(limit);
        let mut walked = Vec::new();
        loop {
            match frames.next_frame() {
                Ok(Some(frame)) => walked.push(frame),
                Ok(None) => return (walked, Ok(frames.end_reason())),
                Err(error) => return (walked, Err(error)),
            }
        }
    })
}

extern "C-unwind" fn walk_callback(argument: u64) -> u64 {
    let result = walk(registry(), 64);
    WALK.with(|cell| *cell.borrow_mut() = result);
    argument
}

fn describe(frames: &[Frame]) -> String {
    let recurse = function_range(fixture(), "unwind_fixture::recurse");
    frames
        .iter()
        .map(|frame| {
            let name = if recurse.contains(&frame.lookup_address) {
                "fixture recurse".into()
            } else {
                common::host_symbol(frame.lookup_address)
            };
            format!("{:#x} cfa {:#x} {name}\n", frame.instruction_pointer, frame.cfa)
        })
        .collect()
}

#[test]
fn walks_recursion_frames_in_order_with_fixed_cfa_steps() {
    let recurse = function_range(fixture(), "unwind_fixture::recurse");
    let depth = 5;
    assert_eq!(fixture_function("unwind_fixture::recurse")(depth, walk_callback, 40), 40 + depth);
    let (frames, end) = WALK.with(|cell| cell.borrow().clone());
    let trace = describe(&frames);
    let end = end.unwrap_or_else(|error| panic!("walk failed: {error}\n{trace}"));
    let first = frames.iter().position(|frame| recurse.contains(&frame.lookup_address)).expect(&trace);
    let count = frames[first..].iter().take_while(|frame| recurse.contains(&frame.lookup_address)).count();
    assert_eq!(count as u64, depth + 1, "{trace}");
    assert!(first >= 1, "host callback frames come first:\n{trace}");
    // The caller of the outermost recurse frame is this test function, on the host side.
    let caller = &frames[first + count];
    assert!(!recurse.contains(&caller.lookup_address));
    for frame in &frames[first..first + count] {
        assert_eq!(frame.function_start, recurse.start, "{trace}");
        assert!(frame.lsda.is_none(), "recurse has no landing pads");
    }
    // Every outer recursion frame returns to the same call site.
    let call_site = frames[first + 1].instruction_pointer;
    assert!(frames[first + 1..first + count].iter().all(|frame| frame.instruction_pointer == call_site));
    // `sub rsp, 0x18` + the return address: every recurse frame is 32 bytes; the RSP of each caller is the CFA.
    for pair in frames[first..first + count].windows(2) {
        assert_eq!(pair[1].cfa - pair[0].cfa, 32, "{trace}");
        assert_eq!(pair[1].registers.get(RSP), Some(pair[0].cfa));
    }
    assert_eq!(frames[first + count - 1].cfa - frames[first].cfa, 32 * depth);
    // psABI 3.2.2: RSP is 16-byte aligned at every call, so every CFA is too.
    assert!(frames.iter().all(|frame| frame.cfa % 16 == 0), "{trace}");
    // The walk leaves the registered code at the thread's start (libc), or finds the outermost frame.
    assert!(matches!(end, Some(EndReason::NoUnwindInfo { .. } | EndReason::OutermostFrame)), "{end:?}\n{trace}");
}

#[test]
fn restores_rbp_through_callee_frames_for_a_realigned_frame() {
    let realigned = function_range(fixture(), "unwind_fixture::realigned");
    let recurse = function_range(fixture(), "unwind_fixture::recurse");
    assert_eq!(fixture_function("unwind_fixture::realigned")(3, walk_callback, 9), 9 + 3);
    let (frames, end) = WALK.with(|cell| cell.borrow().clone());
    let trace = describe(&frames);
    end.unwrap_or_else(|error| panic!("walk failed: {error}\n{trace}"));
    let index = frames.iter().position(|frame| realigned.contains(&frame.lookup_address)).expect(&trace);
    assert!(recurse.contains(&frames[index - 1].lookup_address), "{trace}");
    let frame = &frames[index];
    // realigned: push rbp; mov rbp, rsp; and rsp, -64: its CFA is RBP + 16, with the RBP value the walk carried
    // up through the recurse frames and host frames below it.
    assert_eq!(frame.registers.get(RBP).map(|rbp| rbp + 16), Some(frame.cfa), "{trace}");
    // Its stack pointer is 64-byte aligned (the realignment), below the CFA by at least the 0xc0-byte frame.
    let stack_pointer = frame.registers.get(RSP).unwrap();
    assert_eq!(stack_pointer % 64, 0, "{trace}");
    assert!(frame.cfa - stack_pointer >= 0xc0 + 32);
}

#[test]
fn ends_cleanly_at_code_without_unwind_info() {
    // Only the host is registered: the walk stops at the first fixture frame.
    let registry = UnwindRegistry::new();
    register_host(&registry);
    static HOST_ONLY: OnceLock<UnwindRegistry> = OnceLock::new();
    let registry = HOST_ONLY.get_or_init(|| registry);
    extern "C-unwind" fn host_only_callback(argument: u64) -> u64 {
        let result = walk(HOST_ONLY.get().unwrap(), 64);
        WALK.with(|cell| *cell.borrow_mut() = result);
        argument
    }
    let _ = registry;
    fixture_function("unwind_fixture::recurse")(2, host_only_callback, 0);
    let (frames, end) = WALK.with(|cell| cell.borrow().clone());
    let recurse = function_range(fixture(), "unwind_fixture::recurse");
    match end {
        Ok(Some(EndReason::NoUnwindInfo { address })) => assert!(recurse.contains(&address), "{address:#x}"),
        other => panic!("expected the walk to stop at the fixture: {other:?}\n{}", describe(&frames)),
    }
    // And unregistering the fixture from a full registry has the same effect.
    let registry = UnwindRegistry::new();
    let info = register_fixture(&registry, fixture());
    assert!(registry.find(recurse.start).unwrap().is_some());
    assert_eq!(registry.unregister(info.id()).map(|info| info.id()), Some(info.id()));
    assert!(registry.find(recurse.start).unwrap().is_none());
    assert!(registry.unregister(info.id()).is_none());
}

#[test]
fn frame_limit_bounds_the_walk() {
    extern "C-unwind" fn limited_callback(argument: u64) -> u64 {
        let result = walk(registry(), 4);
        WALK.with(|cell| *cell.borrow_mut() = result);
        argument
    }
    fixture_function("unwind_fixture::recurse")(10, limited_callback, 0);
    let (frames, end) = WALK.with(|cell| cell.borrow().clone());
    assert_eq!(frames.len(), 4);
    assert_eq!(end, Ok(Some(EndReason::Limit)));
}

#[test]
fn backtrace_names_cells_functions_and_offsets() {
    extern "C-unwind" fn backtrace_callback(_argument: u64) -> u64 {
        let fixture = fixture();
        let symbolizer = |address: u64, found: &mut dyn FnMut(SymbolInfo<'_>)| {
            let address = memory_structs::VirtualAddress::new(address as usize);
            if let Some(section) = fixture.cell.section_containing(address) {
                found(SymbolInfo {
                    cell: fixture.cell.name(),
                    symbol: section.name(),
                    symbol_address: section.address().value() as u64,
                });
            }
        };
        let text = with_current_registers(|registers| {
            // SAFETY: live frames of this stack with registered CFI.
            let memory = unsafe { DirectMemory::unbounded() };
            let mut frames = FrameIter::new(registry(), memory, FrameCursor::after_call(*registers)).with_limit(8);
            let mut text = String::new();
            let summary = write_backtrace(&mut text, &mut frames, &symbolizer);
            text.push_str(&format!("{summary:?}"));
            text
        });
        TEXT.with(|cell| *cell.borrow_mut() = text);
        0
    }
    thread_local! { static TEXT: RefCell<String> = const { RefCell::new(String::new()) }; }
    fixture_function("unwind_fixture::recurse")(2, backtrace_callback, 0);
    let text = TEXT.with(|cell| cell.borrow().clone());
    let recurse_lines = text.lines().filter(|line| line.contains("unwind_fixture::recurse+0x")).count();
    assert_eq!(recurse_lines, 3, "{text}");
    assert!(text.contains("(cell unwind_fixture)"), "{text}");
    assert!(text.contains("<function at 0x"), "host frames have no symbolizer entry:\n{text}");
    assert!(
        text.contains("   (frame limit reached)\nOk(BacktraceSummary { frames: 8, end: Some(Limit), error: None })"),
        "{text}"
    );
}

#[test]
fn measures_a_ten_frame_walk() {
    thread_local! { static RESULT: RefCell<(usize, u128)> = const { RefCell::new((0, 0)) }; }
    extern "C-unwind" fn timing_callback(_argument: u64) -> u64 {
        let registry = registry();
        let result = with_current_registers(|registers| {
            let cursor = FrameCursor::after_call(*registers);
            let walk_once = || {
                // SAFETY: live frames of this stack with registered CFI.
                let memory = unsafe { DirectMemory::unbounded() };
                let mut frames = FrameIter::new(registry, memory, cursor).with_limit(10);
                let mut count = 0;
                while frames.next_frame().unwrap().is_some() {
                    count += 1;
                }
                count
            };
            let frames = walk_once();
            let mut samples = Vec::new();
            for _ in 0..50 {
                let start = Instant::now();
                for _ in 0..100 {
                    std::hint::black_box(walk_once());
                }
                samples.push(start.elapsed().as_nanos() / 100);
            }
            samples.sort();
            let median = samples[samples.len() / 2];
            println!("10-frame walk (host, real eh_frame): median {median} ns, min {} ns", samples[0]);
            (frames, median)
        });
        RESULT.with(|cell| *cell.borrow_mut() = result);
        0
    }
    // 8 recurse frames + the host callback frames below: the first 10 frames cross host and fixture code.
    fixture_function("unwind_fixture::recurse")(8, timing_callback, 0);
    let (frames, median) = RESULT.with(|cell| *cell.borrow());
    assert_eq!(frames, 10);
    // Generous bound: a walk that takes a millisecond means something scans linearly or allocates.
    assert!(median < 1_000_000, "{median} ns");
}
