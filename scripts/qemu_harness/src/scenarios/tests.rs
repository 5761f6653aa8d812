//! Unit tests of the scenario table: every pattern compiles, every scenario ends with `exit`, output checks.

use super::*;
use crate::runner::compile;
use regex::Regex;
use std::collections::BTreeMap;

#[test]
fn every_pattern_compiles_and_names_are_unique() {
    let mut names = std::collections::BTreeSet::new();
    for scenario in SCENARIOS.iter().chain(crate::usb_matrix::scenarios()) {
        assert!(names.insert(scenario.name), "duplicate {}", scenario.name);
        for step in scenario.steps {
            if let Step::Command { expect, reject, .. } = step {
                for pattern in expect.iter().chain(reject.iter()) {
                    compile(pattern).unwrap();
                }
            }
            if let Step::BootLogLacks(pattern) | Step::Expect(pattern) | Step::ExpectAnywhere(pattern) = step {
                compile(pattern).unwrap();
            }
            if let Step::Capture { pattern, .. } = step {
                assert!(compile(pattern).unwrap().captures_len() >= 2, "{pattern} has no capture group");
            }
        }
        assert!(matches!(scenario.steps.last(), Some(Step::Exit { .. })), "{} must end with exit", scenario.name);
    }
    for (name, _) in EXTRA_QEMU_ARGUMENTS {
        assert!(SCENARIOS.iter().any(|scenario| scenario.name == *name), "no scenario {name}");
    }
    assert!(extra_qemu_arguments("shell").is_empty());
    for step in SMP_STEPS {
        if let Step::Expect(pattern) = step {
            compile(pattern).unwrap();
        }
    }
    compile(e::PROMPT).unwrap();
    compile(&e::corrupt_object_error(e::CORRUPT_CELL_OBJECT)).unwrap();
}

#[test]
fn output_checks_follow_order_and_reject() {
    let output = "swap: load 1.5 ms\nswap: relink 20 us\nswap: done";
    check_output("swap", output, &[e::SWAP_PHASE_TIME, e::SWAP_DONE], &[]).unwrap();
    check_output(
        "swap",
        "swap: error: missing symbol greeting::greet",
        &[e::SWAP_ERROR, e::SWAP_NAMES_MISSING_SYMBOL],
        &[],
    )
    .unwrap();
    assert!(check_output("swap", output, &[e::SWAP_DONE, e::SWAP_PHASE_TIME], &[]).is_err());
    assert!(check_output("ns", "captain\ngreeting_v1", &[], &[e::NS_LISTS_GREETING_V1]).is_err());
    check_output("ns", "captain\ngreeting_v2", &[e::NS_LISTS_CAPTAIN], &[e::NS_LISTS_GREETING_V1]).unwrap();
}

#[test]
fn all_tests_passed_needs_every_listed_cell() {
    let cells = ["test_a", "test_b"];
    let good = "test_a: running\ntest_a: ok\ntest_b: ok\ntest summary: 2 passed, 0 failed";
    check_all_tests_passed(good, &cells).unwrap();
    // A cell missing from the image: the other still passes, the summary counts 1.
    let missing = "test_a: ok\ntest summary: 1 passed, 0 failed";
    let error = check_all_tests_passed(missing, &cells).unwrap_err();
    assert!(error.0.contains("test_b"), "{error}");
    // A cell that is not listed: the count is off.
    let extra = "test_a: ok\ntest_b: ok\ntest_c: ok\ntest summary: 3 passed, 0 failed";
    assert!(check_all_tests_passed(extra, &cells).unwrap_err().0.contains("expected exactly 2"));
    let failed = "test_a: ok\ntest_b: FAILED: x\ntest summary: 1 passed, 1 failed";
    assert!(check_all_tests_passed(failed, &cells).is_err());
    let no_summary = "test_a: ok\ntest_b: ok";
    assert!(check_all_tests_passed(no_summary, &cells).is_err());
    // The real list: each name is a test cell, and none is listed twice.
    let unique: std::collections::BTreeSet<&str> = e::TEST_CELLS.iter().copied().collect();
    assert_eq!(unique.len(), e::TEST_CELLS.len());
    assert!(e::TEST_CELLS.iter().all(|cell| cell.starts_with("test_")));
}

#[test]
fn capture_and_substitute_the_shell_id() {
    let ps = "scheduler policy: round_robin\n   ID NAME                 STATE     CPU  POLICY     SWITCHES\n    1 idle/0 (idle)        runnable    0* -                29\n    7 shell                running     0* -               196\n 1107 ps-visible           runnable    0  -                 0\n3 tasks";
    let id = capture("ps", ps, e::PS_SHELL_ID).unwrap();
    assert_eq!(id, "7");
    assert!(capture("ps", "no shell here", e::PS_SHELL_ID).is_err());
    let captured = BTreeMap::from([("shell", id)]);
    assert_eq!(substitute(e::BACKTRACE_SHELL, &captured).unwrap(), "bt 7");
    assert_eq!(substitute("ns", &captured).unwrap(), "ns");
    assert!(substitute("bt {other}", &captured).is_err());
    assert_eq!(substitute("hello \"${PLACE}ian\" {shell}", &captured).unwrap(), "hello \"${PLACE}ian\" 7");
}

#[test]
fn application_patterns_match_sample_output() {
    // Lines as the `apps` scenario's log showed them.
    let top = "top - up 3.910 s, 1 CPUs, policy round_robin, 4 tasks, refresh 1 of 2 every 200 ms\n   ID NAME                 STATE     CPU  PRIO SWITCHES     +NEW\n    1 idle/0 (idle)        runnable    0*    -       69       69\n    7 top                  running     0     -        1        1\ntop - up 4.113 s, 1 CPUs, policy round_robin, 4 tasks, refresh 2 of 2 every 200 ms\n   ID NAME                 STATE     CPU  PRIO SWITCHES     +NEW\n    7 top                  running     0     -        2        1";
    check_output("top", top, e::TOP_TWO_REFRESHES, &[e::TOP_THIRD_REFRESH]).unwrap();
    assert!(
        check_output("top", &top.replace("refresh 2 of 2", "refresh 3 of 2"), &[], &[e::TOP_THIRD_REFRESH]).is_err()
    );
    let cut = "hello (application namespace), 3 direct dependencies\nhello\n|-- app_io ...\n|-- greeting_v1 ...\n`-- nano_core";
    check_output("cells", cut, e::CELLS_HELLO_DEPTH_ONE, &[e::CELLS_LEVEL_TWO]).unwrap();
    // One level deeper (what `-d 2` would add) is rejected, under a middle and under the last branch.
    assert!(check_output("cells", "|-- app_io\n|   |-- cell_graph ...", &[], &[e::CELLS_LEVEL_TWO]).is_err());
    assert!(check_output("cells", "`-- greeting_v1\n    `-- nano_core", &[], &[e::CELLS_LEVEL_TWO]).is_err());
    let full = "hello (application namespace), 3 direct dependencies\nhello\n├── app_io\n│   ├── cell_graph\n│   │   └── nano_core\n│   ├── nano_core (*)\n│   ├── scheduler";
    check_output("cells", full, &[e::CELLS_HELLO_HEADER, e::CELLS_REPEAT_MARK, e::CELLS_HELLO_REACHES_SCHEDULER], &[])
        .unwrap();
    let ns = "application checksum app 5652 956 0 142 5 0\napplication crc32fast app 1737 16849 0 113 1 1";
    check_output("ns", ns, &[e::NS_LISTS_CRC32FAST_APP], &[]).unwrap();
    assert!(
        check_output("ns", "kernel crc32fast kernel 1737 16849 0 113 1 1", &[e::NS_LISTS_CRC32FAST_APP], &[]).is_err()
    );
}

#[test]
fn expected_strings_match_sample_output() {
    let matches = |pattern: &str, text: &str| Regex::new(pattern).unwrap().is_match(text);
    assert!(matches(e::PROMPT, "> "));
    assert!(matches(e::PROMPT, "theseus> "));
    assert!(!matches(e::PROMPT, "> hello"));
    assert!(!matches(e::PROMPT, "[ 1.2] INFO loader: captain -> "));
    assert!(matches(e::SWAP_PHASE_TIME, "  stage: 12.5 µs"));
    assert!(matches(e::SWAP_NAMES_MISSING_SYMBOL, "swap: error: missing symbol greeting::greet"));
    assert!(matches(e::SWAP_NAMES_MISSING_SYMBOL, "symbol _RNvCs1_8greeting5greet not provided"));
    let corrupt = e::corrupt_object_error("k-greeting_v2.o");
    assert!(matches(&corrupt, "[ERROR] cell_loader: error loading k-greeting_v2.o: bad header"));
    assert!(matches(&corrupt, "k-greeting_v2.o: ERROR bad section header table"));
    assert!(!matches(&corrupt, "loaded k-greeting_v2.o"));
    assert!(matches(e::SMP_LAST_CPU_ONLINE, "[    2.35] INFO  smp::start: CPU 3 online (APIC id 3)"));
    assert!(matches(
        e::SMP_ALL_CPUS_ONLINE,
        "[ 2.3] INFO  captain: smp: 4 CPUs online (4 listed by the MADT, 3 started); timer 100 Hz on every CPU"
    ));
    let ticks = "INFO  smp: timer check: ticks per CPU in 100 ms (expect about 10): 0=10 1=9 2=11 3=10";
    assert!(matches(e::SMP_TIMER_TICKS_ON_EVERY_CPU, ticks));
    assert!(!matches(e::SMP_TIMER_TICKS_ON_EVERY_CPU, &ticks.replace("3=10", "3=0")));
    assert!(!matches(e::SMP_TIMER_TICKS_ON_EVERY_CPU, &ticks.replace(" 3=10", "")));
    let stop =
        "INFO  smp::stop: stop-the-world check: 3 other CPUs stopped in 52 us; their timers stood still for 30 ms";
    assert!(matches(e::SMP_STOP_THE_WORLD, stop));
    assert!(!matches(e::SMP_STOP_THE_WORLD, &stop.replace("stood still", "KEPT TICKING (not stopped)")));
}
