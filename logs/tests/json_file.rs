//! The json-file sink and reader together on real files: rotation, every `docker logs` option, a torn last line,
//! following across one rotation and several.

use std::fs;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keel_logs::json_file::{JsonFileSink, LogFiles, LogLimits, LogQuery};
use keel_logs::{LogLines, LogRecord, LogSink, LogStream};

fn at(second: u64) -> SystemTime {
    UNIX_EPOCH + Duration::new(1_800_000_000 + second, 0)
}

fn record(stream: LogStream, second: u64, line: &str) -> LogRecord {
    LogRecord { stream, time: at(second), line: line.to_owned(), partial: false }
}

/// One encoded line is 78 bytes for `line-NN` on stdout: `{"log":"line-00\n","stream":"stdout","time":"…Z"}\n`.
const ENTRY: u64 = 78;

fn lines(records: &[LogRecord]) -> Vec<String> {
    records.iter().map(|record| record.line.clone()).collect()
}

fn write_numbered(sink: &JsonFileSink, range: std::ops::Range<u64>) {
    for n in range {
        let stream = if n % 2 == 0 { LogStream::Stdout } else { LogStream::Stderr };
        sink.record("web", &record(stream, n, &format!("line-{n:02}")));
    }
    assert!(sink.flush(Duration::from_secs(10)));
}

#[test]
fn rotation_keeps_max_files_of_at_most_max_size_and_removes_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let sink = JsonFileSink::start(dir.path(), LogLimits { max_size: 4 * ENTRY, max_files: 3 }).unwrap();
    write_numbered(&sink, 0..14);
    let logs = LogFiles::new(dir.path(), "web");
    let names: Vec<String> =
        logs.paths().iter().map(|path| path.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["web-json.log.2", "web-json.log.1", "web-json.log"]);
    let sizes: Vec<u64> = logs.paths().iter().map(|path| fs::metadata(path).unwrap().len()).collect();
    // 14 lines of 78 bytes, 4 a file: 0-3 was rotated out of `.2` and removed; `.2` holds 4-7, `.1` 8-11 and the
    // current file 12-13.
    assert_eq!(sizes, [4 * ENTRY, 4 * ENTRY, 2 * ENTRY]);
    let first = fs::read_to_string(&logs.paths()[0]).unwrap();
    assert_eq!(
        first.lines().next().unwrap(),
        format!("{{\"log\":\"line-04\\n\",\"stream\":\"stdout\",\"time\":\"2027-01-15T08:00:04.000000000Z\"}}")
    );
    let (all, _) = logs.read(&LogQuery::all());
    assert_eq!(lines(&all), (4..14).map(|n| format!("line-{n:02}")).collect::<Vec<_>>());
    assert_eq!(sink.counters().written, 14);
}

#[test]
fn lines_read_together_rotate_between_the_same_lines_as_lines_read_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let sink = JsonFileSink::start(dir.path(), LogLimits { max_size: 4 * ENTRY, max_files: 3 }).unwrap();
    // One read of 14 lines: the rotations fall inside it, after lines 3, 7 and 11.
    let mut batch = LogLines::new(LogStream::Stdout);
    for n in 0..14 {
        batch.push(at(n), format!("line-{n:02}").as_bytes(), false);
    }
    sink.lines("web", &batch);
    assert!(sink.flush(Duration::from_secs(10)));
    let logs = LogFiles::new(dir.path(), "web");
    let sizes: Vec<u64> = logs.paths().iter().map(|path| fs::metadata(path).unwrap().len()).collect();
    assert_eq!(sizes, [4 * ENTRY, 4 * ENTRY, 2 * ENTRY]);
    let (all, _) = logs.read(&LogQuery::all());
    assert_eq!(lines(&all), (4..14).map(|n| format!("line-{n:02}")).collect::<Vec<_>>());
    assert_eq!(all.iter().map(|record| record.time).collect::<Vec<_>>(), (4..14).map(at).collect::<Vec<_>>());
    assert_eq!(sink.counters().written, 14);
}

#[test]
fn every_reader_option_with_the_exact_output() {
    let dir = tempfile::tempdir().unwrap();
    let sink = JsonFileSink::start(dir.path(), LogLimits { max_size: 4 * ENTRY, max_files: 5 }).unwrap();
    write_numbered(&sink, 0..10);
    let logs = LogFiles::new(dir.path(), "web");
    assert_eq!(logs.paths().len(), 3);
    let query = LogQuery::all();
    // The last 3 cross the boundary between `.1` (4-7) and the current file (8-9).
    assert_eq!(lines(&logs.read(&LogQuery { tail: Some(3), ..query }).0), ["line-07", "line-08", "line-09"]);
    assert_eq!(lines(&logs.read(&LogQuery { tail: Some(0), ..query }).0), Vec::<String>::new());
    assert_eq!(lines(&logs.read(&LogQuery { tail: Some(100), ..query }).0).len(), 10);
    let since_until = LogQuery { since: Some(at(3)), until: Some(at(5)), ..query };
    assert_eq!(lines(&logs.read(&since_until).0), ["line-03", "line-04", "line-05"]);
    let stdout = LogQuery { stderr: false, tail: Some(2), ..query };
    assert_eq!(lines(&logs.read(&stdout).0), ["line-06", "line-08"]);
    let stderr = LogQuery { stdout: false, since: Some(at(6)), ..query };
    let records = logs.read(&stderr).0;
    assert_eq!(lines(&records), ["line-07", "line-09"]);
    assert!(records.iter().all(|record| record.stream == LogStream::Stderr));
    assert_eq!(records[0].time, at(7));
}

#[test]
fn a_torn_last_line_and_garbage_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let sink = JsonFileSink::start(dir.path(), LogLimits::default()).unwrap();
    write_numbered(&sink, 0..3);
    drop(sink);
    let logs = LogFiles::new(dir.path(), "web");
    let path = logs.paths().pop().unwrap();
    let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
    // A power cut in the middle of line 3.
    file.write_all(b"{\"log\":\"line-03\\n\",\"stream\":\"std").unwrap();
    assert_eq!(lines(&logs.read(&LogQuery::all()).0), ["line-00", "line-01", "line-02"]);
    assert_eq!(lines(&logs.read(&LogQuery { tail: Some(1), ..LogQuery::all() }).0), ["line-02"]);
    // The writer after a restart: appends after the torn bytes, which stay one unreadable line.
    let sink = JsonFileSink::start(dir.path(), LogLimits::default()).unwrap();
    file.write_all(b"\nnot json\n").unwrap();
    write_numbered(&sink, 4..5);
    assert_eq!(lines(&logs.read(&LogQuery::all()).0), ["line-00", "line-01", "line-02", "line-04"]);
}

#[test]
fn a_follower_sees_lines_across_a_rotation_a_half_written_line_once_whole_and_a_later_file() {
    let dir = tempfile::tempdir().unwrap();
    let sink = JsonFileSink::start(dir.path(), LogLimits { max_size: 4 * ENTRY, max_files: 2 }).unwrap();
    write_numbered(&sink, 0..2);
    let logs = LogFiles::new(dir.path(), "web");
    let (first, mut follower) = logs.read(&LogQuery { stderr: false, ..LogQuery::all() });
    assert_eq!(lines(&first), ["line-00"]);
    assert!(follower.poll().is_empty());
    // 2-3 fill the current file, 4-6 go to a new one after the rotation.
    write_numbered(&sink, 2..7);
    assert_eq!(lines(&follower.poll()), ["line-02", "line-04", "line-06"]);
    write_numbered(&sink, 7..9);
    assert_eq!(lines(&follower.poll()), ["line-08"]);
    // A follower that started before the file existed picks it up.
    let (none, mut early) = LogFiles::new(dir.path(), "db").read(&LogQuery::all());
    assert!(none.is_empty());
    sink.record("db", &record(LogStream::Stderr, 1, "up"));
    assert!(sink.flush(Duration::from_secs(10)));
    assert_eq!(lines(&early.poll()), ["up"]);
    // A line half written when the follower looks is read once it is whole.
    let path = dir.path().join("db/db-json.log");
    let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b"{\"log\":\"half").unwrap();
    assert!(early.poll().is_empty());
    file.write_all(b" and half\\n\",\"stream\":\"stdout\",\"time\":\"2027-01-15T08:00:09Z\"}\n").unwrap();
    let whole = early.poll();
    assert_eq!(lines(&whole), ["half and half"]);
    assert_eq!(whole[0].time, at(9));
}

#[test]
fn a_follower_reads_every_file_rotated_between_two_polls_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let sink = JsonFileSink::start(dir.path(), LogLimits { max_size: 4 * ENTRY, max_files: 5 }).unwrap();
    write_numbered(&sink, 0..2);
    let logs = LogFiles::new(dir.path(), "web");
    let (first, mut follower) = logs.read(&LogQuery::all());
    assert_eq!(first.len(), 2);
    // Three rotations before the next poll: 2-3 end the first file, 4-7 and 8-11 fill two more, 12-13 start a fourth.
    write_numbered(&sink, 2..14);
    assert_eq!(logs.paths().len(), 4);
    let numbered = |range: std::ops::Range<u64>| range.map(|n| format!("line-{n:02}")).collect::<Vec<_>>();
    assert_eq!(lines(&follower.poll()), numbered(2..14));
    assert!(follower.poll().is_empty());
    write_numbered(&sink, 14..19);
    assert_eq!(lines(&follower.poll()), numbered(14..19));
}

#[test]
fn a_follower_whose_file_was_rotated_away_goes_on_with_the_files_left_without_repeating_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let sink = JsonFileSink::start(dir.path(), LogLimits { max_size: 4 * ENTRY, max_files: 2 }).unwrap();
    write_numbered(&sink, 0..2);
    let logs = LogFiles::new(dir.path(), "web");
    let (_, mut follower) = logs.read(&LogQuery::all());
    // The follower's file gets 2-3 and is removed two rotations later with the next file (4-7): those four lines
    // are gone for every reader. 8-11 are in `.1`, 12-13 in the current file.
    write_numbered(&sink, 2..14);
    let expected = ["line-02", "line-03", "line-08", "line-09", "line-10", "line-11", "line-12", "line-13"];
    assert_eq!(lines(&follower.poll()), expected);
    assert_eq!(lines(&logs.read(&LogQuery::all()).0), expected[2..]);
    assert!(follower.poll().is_empty());
}

#[test]
fn one_file_is_truncated_instead_of_rotated_and_a_follower_starts_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let sink = JsonFileSink::start(dir.path(), LogLimits { max_size: 4 * ENTRY, max_files: 1 }).unwrap();
    write_numbered(&sink, 0..4);
    let logs = LogFiles::new(dir.path(), "web");
    let (first, mut follower) = logs.read(&LogQuery::all());
    assert_eq!(first.len(), 4);
    write_numbered(&sink, 4..6);
    assert_eq!(logs.paths().len(), 1);
    assert_eq!(fs::metadata(&logs.paths()[0]).unwrap().len(), 2 * ENTRY);
    assert_eq!(lines(&follower.poll()), ["line-04", "line-05"]);
    assert_eq!(lines(&logs.read(&LogQuery::all()).0), ["line-04", "line-05"]);
}
