//! The verifier's budget: it gives up after a million instructions explored, and the
//! program's paths multiply with every branch on a value it cannot know. This fails well
//! before that, so a change that eats the headroom is seen here, not as a refusal on a
//! server (where the kernel's verifier may differ from the one the suite ran on).

mod common;

use handshake::loader::Handshake;

/// Half the kernel's `BPF_COMPLEXITY_LIMIT_INSNS`.
const BUDGET: u32 = 500_000;

#[test]
fn the_verifier_accepts_the_program_with_half_its_budget_to_spare() {
    common::require_root();
    let mut handshake = Handshake::load().unwrap();
    let explored = handshake
        .program()
        .unwrap()
        .info()
        .unwrap()
        .verified_instruction_count()
        .expect("bpf_prog_info.verified_insns (Linux 5.16+)");
    eprintln!("the verifier explored {explored} instructions");
    assert!(
        explored < BUDGET,
        "the verifier explored {explored} instructions, more than {BUDGET}: the program's paths multiply (see handshake-ebpf/src/main.rs)"
    );
}
