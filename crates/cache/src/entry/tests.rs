//! The entry encoding round-trips and refuses what it did not write.

use super::*;

fn sample() -> Entry {
    let frames = [Bytes::from_static(b"data: 1\n\n"), Bytes::new(), Bytes::from_static(b"data: [DONE]\n\n")];
    Entry::new(200, Some("text/event-stream"), &frames).unwrap()
}

#[test]
fn encoding_round_trips_frame_by_frame() {
    let entry = sample();
    assert_eq!(Entry::decode(Bytes::from(entry.encode())).unwrap(), entry);
    let bare = Entry::new(200, None, &[]).unwrap();
    assert_eq!(Entry::decode(Bytes::from(bare.encode())).unwrap(), bare);
}

#[test]
fn every_truncation_is_an_error_never_a_panic() {
    let encoded = sample().encode();
    for len in 0..encoded.len() {
        assert!(Entry::decode(Bytes::copy_from_slice(&encoded[..len])).is_err(), "prefix of {len} bytes");
    }
}

#[test]
fn a_huge_frame_count_is_refused_before_allocating() {
    let mut encoded = Entry::new(200, None, &[]).unwrap().encode();
    let n = encoded.len();
    encoded[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(Entry::decode(Bytes::from(encoded)), Err(EntryError::TooManyFrames(_))));
}

#[test]
fn the_body_joins_the_frames() {
    assert_eq!(&sample().body()[..], b"data: 1\n\ndata: [DONE]\n\n");
}

#[test]
fn frames_come_back_as_they_went_in_from_one_buffer() {
    let entry = sample();
    let frames: Vec<Bytes> = entry.frames().collect();
    assert_eq!(frames, [&b"data: 1\n\n"[..], b"", b"data: [DONE]\n\n"]);
    assert_eq!(entry.frame_count(), 3);
    assert_eq!(entry.frame(3), None);
    // Every frame is a slice of the one body buffer, not a copy of the upstream's.
    let body = entry.body();
    for frame in frames.iter().filter(|f| !f.is_empty()) {
        let offset = frame.as_ptr() as usize - body.as_ptr() as usize;
        assert!(offset + frame.len() <= body.len(), "frame lies inside the body buffer");
    }
}

#[test]
fn an_entry_does_not_keep_the_upstream_read_buffer_alive() {
    let mut read_buffer = bytes::BytesMut::with_capacity(64 * 1024);
    read_buffer.extend_from_slice(b"data: x\n\n");
    let frame = read_buffer.split().freeze();
    let entry = Entry::new(200, None, std::slice::from_ref(&frame)).unwrap();
    assert_ne!(entry.body().as_ptr(), frame.as_ptr(), "the entry copied the frame");
    assert_eq!(entry.weight(), 9 + 4 + ENTRY_OVERHEAD, "the body, one frame end, the overhead");
}

#[test]
fn the_content_type_is_kept_and_a_long_one_is_cut_on_a_character_boundary() {
    assert_eq!(sample().content_type(), Some("text/event-stream"));
    assert_eq!(Entry::new(200, None, &[]).unwrap().content_type(), None);
    assert_eq!(Entry::new(200, Some(""), &[]).unwrap().content_type(), Some(""));
    let long = format!("{}é", "a".repeat(MAX_CONTENT_TYPE - 1));
    let entry = Entry::new(200, Some(&long), &[Bytes::from_static(b"x")]).unwrap();
    assert_eq!(entry.content_type(), Some(&long[..MAX_CONTENT_TYPE - 1]));
    assert_eq!(Entry::decode(Bytes::from(entry.encode())).unwrap(), entry);
}
