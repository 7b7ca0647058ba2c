#[test]
fn insns() {
    let mut h = handshake::loader::Handshake::load().unwrap();
    let info = h.program().unwrap().info().unwrap();
    eprintln!("VERIFIED INSNS {:?}", info.verified_instruction_count());
}
