//! What each event does to a room's durable state — members, pins, settings,
//! rows, annotations — said once ([`changes`]), and who may receive it
//! ([`audience`]). The room's state, the order's gate and every store apply
//! these same changes, so they cannot disagree about what an event meant.

use hearth_protocol::event::ModerationEvent;
use hearth_protocol::ops::{Escalation, Lockdown, ModAction, ModEntry, PinnedNote, RoomSettings};
use hearth_protocol::{Event, Millis, Note, PinId, Role, Seq, ShortText, UserId};

use super::rows::{self, AnnexRow, AnnexTable, Row, RowTable, Sanction};
use super::{MemberRecord, messages};

/// What one event does to durable room state. Messages change none of it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    PutMember(MemberRecord),
    RemoveMember(UserId),
    /// A member's role changes; when it joined stays.
    SetRole {
        user: UserId,
        role: Role,
        expires_at: Option<Millis>,
    },
    PutPin(PinnedNote),
    RemovePin(PinId),
    UpdateSettings(RoomSettings),
    PutRow(Row),
    RemoveRow {
        table: RowTable,
        key: String,
    },
    PutAnnex(AnnexRow),
    RemoveAnnex {
        table: AnnexTable,
        target: Seq,
        key: String,
    },
    /// One more join came with this invite (by id).
    UseInvite(String),
    /// The pins of message `message` show its text as it is now: `text`
    /// after an edit (cut to a note's length), the placeholder after its
    /// deletion (`None`).
    RetextPins {
        message: Seq,
        text: Option<Note>,
    },
}

/// Who may receive an event: every member, or (a join request, a denial, an
/// invite made or revoked, a held post and its dropping) only welcomers and
/// above. Others never get it — live, in a replay or in history — so their
/// seqs skip it. A held post's author is not told it was dropped, as nobody
/// below welcomer was told it was held.
pub fn audience(event: &Event) -> Role {
    match event {
        Event::Report(e) => e.audience,
        // The word filter's rules are the moderators' to know.
        Event::RoomUpdated(e) if e.settings.filters.is_some() => Role::Moderator,
        Event::Moderation(ModerationEvent { audience: Some(audience), .. }) => *audience,
        Event::JoinRequest(_) | Event::Ack(_) | Event::Arrived(_) | Event::Prompt(_) | Event::Held(_) => Role::Welcomer,
        Event::Moderation(e)
            if matches!(e.action, ModAction::Reject | ModAction::CreateInvite | ModAction::RevokeInvite)
                || e.held.is_some() =>
        {
            Role::Welcomer
        }
        _ => Role::Member,
    }
}

/// The member an event removes from the room, if any: one who left, or one a
/// moderator kicked or banned. From that event on they receive nothing.
pub fn removed_member(event: &Event) -> Option<&UserId> {
    match event {
        Event::MemberLeft(e) => Some(&e.user),
        Event::Erased(e) => Some(&e.user),
        Event::Moderation(e) if matches!(e.action, ModAction::Kick | ModAction::Ban) => e.user.as_ref(),
        // A warning that reached the room's escalation to a kick or a ban.
        Event::Moderation(ModerationEvent {
            action: ModAction::Warn,
            escalation: Some(Escalation { action: ModAction::Kick | ModAction::Ban, .. }),
            user,
            ..
        }) => user.as_ref(),
        _ => None,
    }
}

/// The moderation log entry an event makes, if it is a moderator's action.
fn mod_entry(event: &Event) -> Option<ModEntry> {
    let entry = |seq: Seq, at, by: &UserId, action, user: Option<&UserId>, reason: ShortText, until| ModEntry {
        entry: seq.0,
        at,
        by: by.clone(),
        action,
        user: user.cloned(),
        reason,
        until,
        message: None,
        outcome: None,
        escalation: None,
    };
    Some(match event {
        Event::Moderation(e) => ModEntry {
            message: e.message,
            outcome: e.outcome,
            escalation: e.escalation,
            ..entry(e.seq, e.ts, &e.from, e.action, e.user.as_ref(), e.reason.clone(), e.until)
        },
        Event::Role(e) => {
            entry(e.seq, e.ts, &e.from, ModAction::SetRole, Some(&e.user), ShortText::default(), e.expires_at)
        }
        Event::RoomUpdated(e) => entry(e.seq, e.ts, &e.from, ModAction::SetRoom, None, ShortText::default(), None),
        Event::Pin(e) => entry(e.seq, e.ts, &e.from, ModAction::Pin, None, ShortText::default(), None),
        Event::Unpin(e) => entry(e.seq, e.ts, &e.from, ModAction::Unpin, None, ShortText::default(), None),
        Event::MemberJoined(e) => {
            let by = e.approved_by.as_ref()?;
            entry(e.seq, e.ts, by, ModAction::Approve, Some(&e.from), ShortText::default(), None)
        }
        Event::Delete(e) => {
            entry(e.seq, e.ts, &e.from, ModAction::Delete, Some(e.of.as_ref()?), ShortText::default(), None)
        }
        _ => return None,
    })
}

/// The ban, mute or warning a moderation event gives, holding until `until`.
fn sanction(e: &ModerationEvent, until: Option<Millis>) -> Sanction {
    Sanction { by: e.from.clone(), at: e.ts, until, reason: e.reason.clone() }
}

/// A raid's lockdown, which a join or a request that made the room's
/// threshold carries: the room's settings change with it.
fn raid_lockdown(lockdown: Option<Lockdown>) -> Option<Change> {
    lockdown.map(|l| Change::UpdateSettings(RoomSettings { lockdown: Some(l), ..RoomSettings::default() }))
}

/// A reaction's annotation key on its message.
fn reaction_key(emoji: &hearth_protocol::Emoji, user: &UserId) -> String {
    format!("r:{emoji}\u{1f}{user}")
}

/// What a member leaving forgets of them (bans and warnings stay).
fn forget(user: &UserId) -> [Change; 5] {
    [RowTable::Ack, RowTable::Title, RowTable::Request, RowTable::Posts, RowTable::Approved]
        .map(|table| Change::RemoveRow { table, key: user.to_string() })
}

/// What a warning changes: the warning kept, the member's expired ones
/// forgotten, and the room's escalation applied with it.
fn warned(e: &ModerationEvent, user: &UserId) -> Vec<Change> {
    let warning = sanction(e, e.until);
    let mut changes = vec![Change::PutRow(Row::warning(user, e.seq, &warning))];
    changes.extend(
        e.warnings.iter().map(|id| Change::RemoveRow { table: RowTable::Warning, key: rows::warning_key(user, *id) }),
    );
    let Some(escalation) = e.escalation else { return changes };
    let sanction = sanction(e, escalation.until);
    match escalation.action {
        ModAction::Mute => changes.push(Change::PutRow(Row::mute(user, &sanction))),
        ModAction::Kick | ModAction::Ban => {
            changes.push(Change::RemoveMember(user.clone()));
            if escalation.action == ModAction::Ban {
                changes.push(Change::PutRow(Row::ban(user, &sanction)));
            }
            changes.extend(forget(user));
        }
        _ => {}
    }
    changes
}

/// The changes `event` makes. The one definition of what each event kind means for
/// members, pins and settings; the event must be stamped (`Event::stamp`).
/// How long a member counts as new (`members` shows `newcomer`).
pub const NEWCOMER_MS: u64 = 7 * 24 * 3600 * 1000;

pub fn changes(event: &Event) -> Vec<Change> {
    let mut changes = match event {
        Event::MemberJoined(e) => {
            let mut changes = vec![
                Change::PutMember(MemberRecord {
                    user: e.from.clone(),
                    role: e.role,
                    joined_at: e.ts,
                    role_expires_at: None,
                }),
                Change::RemoveRow { table: RowTable::Request, key: e.from.to_string() },
                Change::RemoveRow { table: RowTable::Denied, key: e.from.to_string() },
            ];
            if let Some(invite) = &e.invite {
                changes.push(Change::UseInvite(invite.clone()));
            }
            // Let in by someone else: they have not joined on a connection
            // yet, and their first `join` will be their first.
            if let Some(by) = &e.approved_by {
                changes.push(Change::PutRow(Row::approved(&e.from, by)));
            }
            changes.extend(raid_lockdown(e.lockdown));
            changes
        }
        Event::DirectStarted(e) => e
            .members
            .iter()
            .map(|user| {
                Change::PutMember(MemberRecord {
                    user: user.clone(),
                    role: Role::Member,
                    joined_at: e.ts,
                    role_expires_at: None,
                })
            })
            .collect(),
        Event::Ack(e) => vec![Change::PutRow(Row::ack(&e.from, e.version))],
        Event::Arrived(e) => vec![Change::RemoveRow { table: RowTable::Approved, key: e.from.to_string() }],
        Event::JoinRequest(e) => {
            let mut changes = vec![
                Change::PutRow(Row::request(&e.from, &rows::Request { note: e.note.clone(), at: e.ts })),
                Change::RemoveRow { table: RowTable::Denied, key: e.from.to_string() },
            ];
            changes.extend(raid_lockdown(e.lockdown));
            changes
        }
        Event::MemberLeft(e) => {
            let mut changes = vec![Change::RemoveMember(e.user.clone())];
            changes.extend(forget(&e.user));
            changes
        }
        Event::Pin(e) => {
            let mut changes = Vec::with_capacity(2);
            if let Some(old) = e.replaces {
                changes.push(Change::RemovePin(old));
            }
            changes.push(Change::PutPin(e.pin.clone()));
            changes
        }
        Event::Unpin(e) => vec![Change::RemovePin(e.pin)],
        Event::RoomUpdated(e) => vec![Change::UpdateSettings(e.settings.clone())],
        Event::Role(e) => {
            let mut changes = vec![Change::SetRole { user: e.user.clone(), role: e.role, expires_at: e.expires_at }];
            match &e.title {
                Some(title) if title.as_str().is_empty() => {
                    changes.push(Change::RemoveRow { table: RowTable::Title, key: e.user.to_string() });
                }
                Some(title) => changes.push(Change::PutRow(Row::title(&e.user, title))),
                None => {}
            }
            changes
        }
        Event::Moderation(e) => match (e.action, &e.user) {
            (ModAction::Kick, Some(user)) => {
                let mut changes = vec![Change::RemoveMember(user.clone())];
                changes.extend(forget(user));
                changes
            }
            (ModAction::Ban, Some(user)) => {
                let sanction = sanction(e, e.until);
                let mut changes = vec![Change::RemoveMember(user.clone()), Change::PutRow(Row::ban(user, &sanction))];
                changes.extend(forget(user));
                changes
            }
            (ModAction::Unban, Some(user)) => vec![Change::RemoveRow { table: RowTable::Ban, key: user.to_string() }],
            (ModAction::Mute, Some(user)) => {
                let sanction = sanction(e, e.until);
                vec![Change::PutRow(Row::mute(user, &sanction))]
            }
            (ModAction::Unmute, Some(user)) => {
                vec![Change::RemoveRow { table: RowTable::Mute, key: user.to_string() }]
            }
            (ModAction::Delete, Some(user)) => match &e.held {
                Some(cmid) => {
                    vec![Change::RemoveRow { table: RowTable::Held, key: rows::held_key(user, cmid.as_str()) }]
                }
                None => Vec::new(),
            },
            (ModAction::Reject, Some(user)) => {
                let denial = rows::Denial { by: e.from.clone(), at: e.ts, reason: e.reason.clone() };
                vec![
                    Change::RemoveRow { table: RowTable::Request, key: user.to_string() },
                    Change::PutRow(Row::denied(user, &denial)),
                ]
            }
            (ModAction::CreateInvite, _) => match &e.invite {
                Some(id) => {
                    let invite = rows::InviteRow {
                        by: e.from.clone(),
                        at: e.ts,
                        expires_at: e.until,
                        max_uses: e.max_uses,
                        uses: 0,
                    };
                    vec![Change::PutRow(Row::invite(id, &invite))]
                }
                None => Vec::new(),
            },
            (ModAction::Warn, Some(user)) => warned(e, user),
            (ModAction::Unwarn, Some(user)) => e
                .warnings
                .iter()
                .map(|id| Change::RemoveRow { table: RowTable::Warning, key: rows::warning_key(user, *id) })
                .collect(),
            (ModAction::Resolve, _) => {
                let mut changes: Vec<Change> = e
                    .reports
                    .iter()
                    .map(|id| Change::RemoveRow { table: RowTable::Report, key: rows::seq_key("", *id) })
                    .collect();
                if let (Some(message), Some(outcome)) = (e.message, e.outcome) {
                    let resolution = rows::Resolution { by: e.from.clone(), at: e.ts, outcome };
                    changes.push(Change::PutAnnex(AnnexRow::message(message, "resolved".into(), &resolution)));
                }
                changes
            }
            (ModAction::RevokeInvite, _) => match &e.invite {
                Some(id) => vec![Change::RemoveRow { table: RowTable::Invite, key: id.clone() }],
                None => Vec::new(),
            },
            _ => Vec::new(),
        },
        Event::Message(e) => {
            let mut changes = Vec::new();
            if let Some(root) = e.thread {
                let reply = rows::ByAt { by: e.from.clone(), at: e.ts };
                changes.push(Change::PutAnnex(AnnexRow::message(root, rows::seq_key("reply:", e.seq), &reply)));
            }
            if let Some(count) = e.probation_post {
                changes.push(Change::PutRow(Row::posts(&e.from, count)));
            }
            // A held message released: it is held no more.
            if e.released_by.is_some() {
                changes
                    .push(Change::RemoveRow { table: RowTable::Held, key: rows::held_key(&e.from, e.cmid.as_str()) });
            }
            // A prompt the server posted: its next time, or gone if that was the last.
            if let Some(posted) = &e.prompt {
                changes.push(match posted.next_at {
                    Some(next_at) => Change::PutRow(Row::prompt(
                        posted.prompt,
                        &rows::PromptRow { by: e.from.clone(), text: e.text.clone(), next_at, weekly: true },
                    )),
                    None => Change::RemoveRow { table: RowTable::Prompt, key: posted.prompt.to_string() },
                });
            }
            changes
        }
        Event::Held(e) => vec![Change::PutRow(Row::held(
            &e.from,
            e.cmid.as_str(),
            &rows::HeldRow { text: e.text.clone(), thread: e.thread, at: e.ts },
        ))],
        Event::Report(e) => vec![Change::PutRow(Row::report(
            e.seq,
            &rows::ReportRow {
                by: e.from.clone(),
                message: e.message,
                author: e.author.clone(),
                text: e.text.clone(),
                category: e.category,
                note: e.note.clone(),
                at: e.ts,
                audience: e.audience,
            },
        ))],
        Event::Prompt(e) => match (&e.text, e.next_at) {
            (Some(text), Some(next_at)) => vec![Change::PutRow(Row::prompt(
                e.prompt,
                &rows::PromptRow { by: e.from.clone(), text: text.clone(), next_at, weekly: e.weekly },
            ))],
            _ => vec![Change::RemoveRow { table: RowTable::Prompt, key: e.prompt.to_string() }],
        },
        Event::Edit(e) => {
            let version = rows::VersionAnn { text: e.text.clone(), at: e.ts };
            vec![
                Change::PutAnnex(AnnexRow::message(e.target, rows::seq_key("v:", e.seq), &version)),
                Change::RetextPins { message: e.target, text: Some(messages::note_of(&e.text)) },
            ]
        }
        Event::Delete(e) => {
            vec![
                Change::PutAnnex(AnnexRow::message(
                    e.target,
                    "del".into(),
                    &rows::ByAt { by: e.from.clone(), at: e.ts },
                )),
                Change::RetextPins { message: e.target, text: None },
            ]
        }
        Event::Erased(e) => {
            let mut changes = vec![Change::RemoveMember(e.user.clone())];
            changes.extend(forget(&e.user));
            for &message in &e.messages {
                let erased = rows::ByAt { by: e.user.clone(), at: e.ts };
                if e.former_member {
                    // Kept, with its text: only who wrote it is gone.
                    changes.push(Change::PutAnnex(AnnexRow::message(message, "former".into(), &erased)));
                } else {
                    changes.push(Change::PutAnnex(AnnexRow::message(message, "erased".into(), &erased)));
                    changes.push(Change::RetextPins { message, text: None });
                }
            }
            changes.extend(e.reactions.iter().map(|r| Change::RemoveAnnex {
                table: AnnexTable::Message,
                target: r.target,
                key: reaction_key(&r.emoji, &e.user),
            }));
            changes.extend(
                e.held.iter().map(|cmid| Change::RemoveRow {
                    table: RowTable::Held,
                    key: rows::held_key(&e.user, cmid.as_str()),
                }),
            );
            changes
        }
        Event::Reaction(e) => {
            let key = reaction_key(&e.emoji, &e.from);
            if e.on {
                vec![Change::PutAnnex(AnnexRow::message(e.target, key, &e.ts))]
            } else {
                vec![Change::RemoveAnnex { table: AnnexTable::Message, target: e.target, key }]
            }
        }
        Event::Hello(_)
        | Event::Typing(_)
        | Event::Presence(_)
        | Event::JoinDecision(_)
        | Event::Truncated(_)
        | Event::Read(_)
        | Event::Blocks(_) => Vec::new(),
    };
    if let Some(entry) = mod_entry(event) {
        changes.push(Change::PutAnnex(AnnexRow::mod_log(&entry)));
    }
    changes
}
