//! A room's health, computed from its stored timeline: over the last N days,
//! how many messages and who posted, who joined, which messages became
//! threads and how many replies they drew, which members answer each other
//! again and again, and how long a newcomer's first post waits for a reply.
//! Pure: events and the time in, numbers out.

use std::collections::{BTreeMap, HashMap, HashSet};

use hearth_protocol::ops::WindowStats;
use hearth_protocol::{Event, Millis, Seq, UserId};

const DAY_MS: u64 = 24 * 3600 * 1000;

/// The window of the last `days` days before `now`, from `events` (the
/// room's timeline since at least then, in seq order; replies after the
/// window still count for the threads begun in it).
pub fn window(events: &[Event], now: Millis, days: u16) -> WindowStats {
    let since = now.0.saturating_sub(u64::from(days) * DAY_MS);
    // Every message by seq: its author and time; and each root's replies.
    let mut authors: HashMap<Seq, (&UserId, Millis)> = HashMap::new();
    let mut replies: BTreeMap<Seq, Vec<(Seq, &UserId, Millis)>> = BTreeMap::new();
    let mut joined_in_window: HashMap<&UserId, Millis> = HashMap::new();
    for event in events {
        match event {
            Event::Message(m) => {
                authors.insert(m.seq, (&m.from, m.ts));
                if let Some(root) = m.thread {
                    replies.entry(root).or_default().push((m.seq, &m.from, m.ts));
                }
            }
            Event::MemberJoined(j) if j.ts.0 >= since && j.ts.0 <= now.0 => {
                joined_in_window.entry(&j.from).or_insert(j.ts);
            }
            _ => {}
        }
    }
    let in_window = |ts: Millis| ts.0 >= since && ts.0 <= now.0;
    let posts: Vec<(&Seq, &(&UserId, Millis))> = authors.iter().filter(|(_, (_, ts))| in_window(*ts)).collect();
    let active: HashSet<&UserId> = posts.iter().map(|(_, (who, _))| *who).collect();
    // Threads: messages of the window with at least one reply.
    let threads: Vec<(&Seq, usize)> =
        posts.iter().filter_map(|(seq, _)| replies.get(seq).map(|r| (*seq, r.len()))).filter(|(_, n)| *n > 0).collect();
    let reply_count: usize = threads.iter().map(|(_, n)| n).sum();
    // Interactions: a reply in the window from one member to another's message.
    let mut pairs: HashMap<(&UserId, &UserId), u32> = HashMap::new();
    for (root, list) in &replies {
        let Some((root_author, _)) = authors.get(root) else { continue };
        for (_, from, ts) in list.iter().filter(|(_, from, ts)| in_window(*ts) && from != root_author) {
            let _ = ts;
            let pair = if *from < *root_author { (*from, *root_author) } else { (*root_author, *from) };
            *pairs.entry(pair).or_default() += 1;
        }
    }
    // Newcomers' first posts, and how long each waited for a reply by another.
    let mut waits: Vec<u64> = Vec::new();
    for (newcomer, joined) in &joined_in_window {
        let first =
            authors.iter().filter(|(_, (who, ts))| *who == *newcomer && *ts >= *joined).min_by_key(|(seq, _)| **seq);
        let Some((first_seq, (_, posted))) = first else { continue };
        let answered = replies
            .get(first_seq)
            .and_then(|list| list.iter().filter(|(_, from, _)| from != newcomer).map(|(_, _, ts)| ts.0).min());
        if let Some(at) = answered {
            waits.push(at.saturating_sub(posted.0) / 1000);
        }
    }
    waits.sort_unstable();
    let median = (!waits.is_empty()).then(|| {
        let mid = waits.len() / 2;
        if waits.len() % 2 == 1 { waits[mid] } else { (waits[mid - 1] + waits[mid]) / 2 }
    });
    WindowStats {
        days,
        messages: posts.len() as u32,
        active_members: active.len() as u32,
        new_members: joined_in_window.len() as u32,
        threads: threads.len() as u32,
        avg_replies_per_thread: if threads.is_empty() { 0.0 } else { reply_count as f32 / threads.len() as f32 },
        repeat_interactions: pairs.values().filter(|n| **n > 1).count() as u32,
        newcomer_first_reply_secs: median.map(|s| s.min(u64::from(u32::MAX)) as u32),
    }
}

#[cfg(test)]
mod tests {
    use hearth_protocol::event::{MemberJoinedEvent, MessageEvent};
    use hearth_protocol::{ClientMsgId, Role, RoomId, Text};

    use super::*;

    const NOW: Millis = Millis(100 * DAY_MS);

    fn at(days_ago: f64) -> Millis {
        Millis(NOW.0 - (days_ago * DAY_MS as f64) as u64)
    }

    struct Fixture(Vec<Event>);

    impl Fixture {
        fn join(&mut self, who: &str, days_ago: f64) {
            let seq = Seq(self.0.len() as u64 + 1);
            self.0.push(Event::MemberJoined(MemberJoinedEvent {
                room: RoomId::new("fixture").unwrap(),
                seq,
                ts: at(days_ago),
                from: UserId::new(who).unwrap(),
                role: Role::Member,
                approved_by: None,
                invite: None,
                lockdown: None,
            }));
        }

        fn post(&mut self, who: &str, days_ago: f64, thread: Option<u64>) -> u64 {
            let seq = Seq(self.0.len() as u64 + 1);
            let (room, from) = (RoomId::new("fixture").unwrap(), UserId::new(who).unwrap());
            let cmid = ClientMsgId::new(format!("c{}", seq.0)).unwrap();
            self.0.push(Event::Message(MessageEvent {
                seq,
                ts: at(days_ago),
                ..MessageEvent::draft(room, from, Text::new("x").unwrap(), cmid, thread.map(Seq))
            }));
            seq.0
        }
    }

    /// A month of a small room, built by hand; every expected number below is
    /// counted from this story, not from the code.
    #[test]
    fn a_hand_built_month_gives_the_counted_numbers() {
        let mut f = Fixture(Vec::new());
        f.join("ada", 60.0); // before both windows
        f.join("bo", 20.0); // in the 30-day window
        f.join("cy", 3.0); // in both
        let old = f.post("ada", 40.0, None); // outside both windows
        f.post("bo", 35.0, Some(old)); // a reply outside both windows
        let q1 = f.post("bo", 19.0, None); // bo's first post: answered 2 h later
        f.post("ada", 19.0 - 2.0 / 24.0, Some(q1));
        f.post("bo", 18.0, Some(q1)); // bo answers in his own thread
        let q2 = f.post("ada", 10.0, None);
        f.post("bo", 9.0, Some(q2)); // ada<->bo: second interaction
        f.post("ada", 2.0, None); // no replies: not a thread
        let q3 = f.post("cy", 2.5, None); // cy's first post: answered 30 min later
        f.post("ada", 2.5 - 0.5 / 24.0, Some(q3));
        f.post("bo", 1.0, Some(q3));
        f.post("bo", 0.5, Some(q3));

        let month = window(&f.0, NOW, 30);
        // Messages posted in the last 30 days: q1 + 2 replies, q2 + 1, the lone post, q3 + 3.
        assert_eq!(month.messages, 10);
        assert_eq!(month.active_members, 3);
        assert_eq!(month.new_members, 2);
        // Threads begun in the window: q1 (2 replies), q2 (1), q3 (3).
        assert_eq!(month.threads, 3);
        assert!((month.avg_replies_per_thread - 2.0).abs() < 1e-6);
        // Interactions (replies to another's message): ada->bo(q1), bo->ada(q2),
        // ada->cy(q3), bo->cy(q3) twice. Pairs with more than one: {ada,bo}, {bo,cy}.
        assert_eq!(month.repeat_interactions, 2);
        // Newcomers' waits: bo 2 h = 7200 s, cy 30 min = 1800 s; median 4500.
        assert_eq!(month.newcomer_first_reply_secs, Some(4500));

        let week = window(&f.0, NOW, 7);
        // The last week: the lone post, q3 and its three replies.
        assert_eq!(week.messages, 5);
        assert_eq!(week.active_members, 3);
        assert_eq!(week.new_members, 1);
        assert_eq!(week.threads, 1);
        assert!((week.avg_replies_per_thread - 3.0).abs() < 1e-6);
        assert_eq!(week.repeat_interactions, 1, "bo and cy, twice");
        assert_eq!(week.newcomer_first_reply_secs, Some(1800));
    }

    #[test]
    fn a_quiet_room_has_zeros_not_errors() {
        let stats = window(&[], NOW, 7);
        assert_eq!((stats.messages, stats.threads, stats.newcomer_first_reply_secs), (0, 0, None));
        assert_eq!(stats.avg_replies_per_thread, 0.0);
    }
}
