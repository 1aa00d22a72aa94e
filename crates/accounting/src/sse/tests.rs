//! Tests of the SSE parser: spec rules, awkward splits, caps, and split invariance.

use proptest::prelude::*;

use super::{SseItem, SseParser};

/// Owned copy of an item, so tests can collect them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Event(Option<String>, String),
    NamedOnly(String),
    Other(String),
}

fn own(item: SseItem<'_>) -> Item {
    match item {
        SseItem::Event(event) => Item::Event(event.event.map(str::to_owned), event.data.to_owned()),
        SseItem::NamedOnly { event } => Item::NamedOnly(event.to_owned()),
        SseItem::OtherLine(line) => Item::Other(line.to_owned()),
    }
}

fn parse_chunks(chunks: &[&[u8]]) -> Vec<Item> {
    let mut parser = SseParser::new();
    let mut items = Vec::new();
    for chunk in chunks {
        parser.push(chunk, &mut |item| items.push(own(item)));
    }
    parser.finish(&mut |item| items.push(own(item)));
    items
}

fn parse(bytes: &[u8]) -> Vec<Item> {
    parse_chunks(&[bytes])
}

fn data(text: &str) -> Item {
    Item::Event(None, text.to_owned())
}

#[test]
fn single_event_with_lf() {
    assert_eq!(parse(b"data: hello\n\n"), vec![data("hello")]);
}

#[test]
fn crlf_and_lone_cr_line_ends() {
    assert_eq!(parse(b"data: a\r\n\r\ndata: b\r\rdata: c\n\n"), vec![data("a"), data("b"), data("c")]);
}

#[test]
fn cr_at_end_of_chunk_then_lf_is_one_line_end() {
    let items = parse_chunks(&[b"data: a\r", b"\n", b"\r", b"\ndata: b\n\n"]);
    assert_eq!(items, vec![data("a"), data("b")]);
}

#[test]
fn lone_cr_at_end_of_chunk_followed_by_text() {
    let items = parse_chunks(&[b"data: a\r", b"\r", b"data: b\r", b"\r"]);
    assert_eq!(items, vec![data("a"), data("b")]);
}

#[test]
fn comments_are_ignored() {
    let items = parse(b": OPENROUTER PROCESSING\n\n: keep-alive\ndata: x\n\n");
    assert_eq!(items, vec![data("x")]);
}

#[test]
fn multi_line_data_joins_with_lf() {
    let items = parse(b"data: {\ndata: \"foo\":\ndata: true}\n\n");
    assert_eq!(items, vec![data("{\n\"foo\":\ntrue}")]);
}

#[test]
fn data_without_space_and_only_one_space_stripped() {
    assert_eq!(parse(b"data:x\n\ndata:  y\n\n"), vec![data("x"), data(" y")]);
}

#[test]
fn empty_data_line_dispatches_empty_event() {
    assert_eq!(parse(b"data:\n\n"), vec![data("")]);
    assert_eq!(parse(b"data\n\n"), vec![data("")]);
}

#[test]
fn event_name_is_reported_and_reset_after_dispatch() {
    let items = parse(b"event: message_start\ndata: {}\n\ndata: 2\n\n");
    assert_eq!(items, vec![Item::Event(Some("message_start".into()), "{}".into()), data("2")]);
}

#[test]
fn event_only_block_is_reported_as_named_only() {
    let items = parse(b"event: ping\n\ndata: x\n\n");
    assert_eq!(items, vec![Item::NamedOnly("ping".into()), data("x")]);
}

#[test]
fn id_and_retry_are_ignored() {
    assert_eq!(parse(b"id: 7\nretry: 100\ndata: x\n\n"), vec![data("x")]);
}

#[test]
fn unknown_fields_and_raw_lines_are_reported() {
    let items = parse(b"{\n  \"error\": {\n    \"code\": 429\n  }\n}\n");
    assert_eq!(
        items,
        vec![
            Item::Other("{".into()),
            Item::Other("  \"error\": {".into()),
            Item::Other("    \"code\": 429".into()),
            Item::Other("  }".into()),
            Item::Other("}".into()),
        ]
    );
}

#[test]
fn unicode_line_separators_are_not_line_ends() {
    let text = "data: {\"content\":\" \u{2028} \u{2029} \u{85}\"}\n\n";
    assert_eq!(parse(text.as_bytes()), vec![data("{\"content\":\" \u{2028} \u{2029} \u{85}\"}")]);
}

#[test]
fn multibyte_character_split_across_chunks() {
    let items = parse_chunks(&[b"data: \xd0", b"\xb8\xd0\xb7\xd0", b"\xb2\n\n"]);
    assert_eq!(items, vec![data("изв")]);
}

#[test]
fn invalid_utf8_is_replaced_not_panicking() {
    let items = parse(b"data: a\xffb\n\n");
    assert_eq!(items, vec![data("a\u{fffd}b")]);
}

#[test]
fn leading_bom_is_stripped_once() {
    assert_eq!(parse(b"\xef\xbb\xbfdata: x\n\n"), vec![data("x")]);
    assert_eq!(parse_chunks(&[b"\xef\xbb", b"\xbfdata: x\n\n"]), vec![data("x")]);
}

#[test]
fn pending_event_is_delivered_at_eof() {
    assert_eq!(parse(b"data: {\"a\":1}"), vec![data("{\"a\":1}")]);
    assert_eq!(parse(b"data: {\"a\":1}\n"), vec![data("{\"a\":1}")]);
    assert_eq!(parse(b"data: {\"a\":1}\r"), vec![data("{\"a\":1}")]);
}

#[test]
fn several_events_in_one_chunk_and_events_across_chunks() {
    let items = parse_chunks(&[b"data: 1\n\ndata: 2\n\nda", b"ta: 3\n", b"\n"]);
    assert_eq!(items, vec![data("1"), data("2"), data("3")]);
}

#[test]
fn over_long_line_discards_its_event_only() {
    let mut parser = SseParser::with_max_line_bytes(8);
    let mut items = Vec::new();
    for chunk in [&b"data: 0123"[..], b"456789\n\ndata: ok\n\n"] {
        parser.push(chunk, &mut |item| items.push(own(item)));
    }
    parser.finish(&mut |item| items.push(own(item)));
    assert_eq!(items, vec![data("ok")]);
    assert_eq!(parser.discarded_events(), 1);
}

#[test]
fn over_long_line_inside_one_chunk_is_discarded() {
    let mut parser = SseParser::with_max_line_bytes(8);
    let mut items = Vec::new();
    parser.push(b"data: 0123456789\n\ndata: ok\n\n", &mut |item| items.push(own(item)));
    assert_eq!(items, vec![data("ok")]);
    assert_eq!(parser.discarded_events(), 1);
}

#[test]
fn over_long_multi_line_data_is_discarded() {
    let mut parser = SseParser::with_max_line_bytes(8);
    let mut items = Vec::new();
    parser.push(b"data: 0123\ndata: 4567\n\ndata: ok\n\n", &mut |item| items.push(own(item)));
    assert_eq!(items, vec![data("ok")]);
}

/// Splits `bytes` at the given (sorted, deduplicated) points.
fn split_at_points<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    for &point in points {
        chunks.push(&bytes[start..point]);
        start = point;
    }
    chunks.push(&bytes[start..]);
    chunks
}

fn stream_strategy() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"data: ".to_vec()),
        Just(b"data:".to_vec()),
        Just(b"event: message_delta".to_vec()),
        Just(b": comment".to_vec()),
        Just(b"id: 1".to_vec()),
        Just(b"{\"usage\":{\"a\":1}}".to_vec()),
        Just("изв\u{2028}€😀".as_bytes().to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n\n".to_vec()),
        Just(b"\r\n\r\n".to_vec()),
        Just(b"\xef\xbb\xbf".to_vec()),
        Just(b"\xff".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..6),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #[test]
    fn items_do_not_depend_on_how_bytes_are_split(
        bytes in stream_strategy(),
        raw_points in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut points: Vec<usize> = raw_points.iter().map(|index| index.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        points.dedup();
        let whole = parse(&bytes);
        let split = parse_chunks(&split_at_points(&bytes, &points));
        prop_assert_eq!(&whole, &split);
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(&whole, &parse_chunks(&bytewise));
    }
}
