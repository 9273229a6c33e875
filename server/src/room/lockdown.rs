//! Lockdown and raid detection, as decisions: a moderator locks a room for
//! a time — no new members, or read-only below moderator — and it lifts by
//! itself; a room that sees `raid_joins` joins or requests within
//! `raid_secs` locks its doors with the join that made the count, in the
//! same event.

use hearth_protocol::event::RoomUpdatedEvent;
use hearth_protocol::ops::{LockLevel, Lockdown, RoomSettings};
use hearth_protocol::{Event, Millis, Role, Seq, UserId};

use super::community::MAX_SANCTION_SECS;
use super::permissions::{Action, least_role};
use super::{Draft, Refusal, Requires, RoomState, Term};

/// The longest window raid detection counts over.
pub const MAX_RAID_SECS: u32 = 3600;
/// The most joins a raid threshold may take.
pub const MAX_RAID_JOINS: u32 = 1000;
/// How long a raid's lockdown lasts when the room does not say.
pub const DEFAULT_RAID_LOCK_SECS: u32 = 3600;

impl RoomState {
    /// The lockdown holding at `now`, if any.
    pub fn locked(&self, now: Millis) -> Option<Lockdown> {
        self.record.lockdown.filter(|l| l.level != LockLevel::Off && l.until.is_none_or(|until| until > now))
    }

    /// Refuses a new member (a join, a request, an invite) while the room is
    /// locked at any level.
    pub(super) fn check_doors(&self, now: Millis) -> Result<(), Refusal> {
        match self.locked(now) {
            Some(lockdown) => Err(Refusal::Locked { level: lockdown.level, term: Term::of(lockdown.until, now) }),
            None => Ok(()),
        }
    }

    /// Refuses a post, an edit or a reaction below moderator in a read-only room.
    pub(super) fn check_read_only(&self, role: Role, now: Millis) -> Result<(), Refusal> {
        match self.locked(now) {
            Some(lockdown) if lockdown.level == LockLevel::ReadOnly && role < least_role(Action::Moderate) => {
                Err(Refusal::Locked { level: lockdown.level, term: Term::of(lockdown.until, now) })
            }
            _ => Ok(()),
        }
    }

    /// The lockdown a new arrival at `now` brings, when it makes the room's
    /// raid threshold (and the doors are not locked already).
    pub(super) fn raid(&self, now: Millis) -> Option<Lockdown> {
        let r = &self.record;
        if r.raid_joins == 0 || self.locked(now).is_some() {
            return None;
        }
        let since = now.0.saturating_sub(u64::from(r.raid_secs) * 1000);
        let recent = self.arrivals.iter().filter(|at| at.0 > since).count();
        let lock_secs = if r.raid_lock_secs == 0 { DEFAULT_RAID_LOCK_SECS } else { r.raid_lock_secs };
        (recent + 1 >= r.raid_joins as usize)
            .then(|| Lockdown { level: LockLevel::Joins, until: Some(Millis(now.0 + u64::from(lock_secs) * 1000)) })
    }

    /// Counts a join or a request to join, for raid detection: the window
    /// is at most an hour, so older ones are forgotten.
    pub(super) fn note_arrival(&mut self, event: &Event) {
        let at = match event {
            // Let in by a welcomer is not a stranger at the door.
            Event::MemberJoined(j) if j.approved_by.is_none() => j.ts,
            Event::JoinRequest(r) => r.ts,
            _ => return,
        };
        let oldest = at.0.saturating_sub(u64::from(MAX_RAID_SECS) * 1000);
        while self.arrivals.front().is_some_and(|t| t.0 <= oldest) {
            self.arrivals.pop_front();
        }
        if self.arrivals.len() < MAX_RAID_JOINS as usize {
            self.arrivals.push_back(at);
        }
    }

    /// A moderator locks the room (`joins`, `read_only`) for `duration_secs`
    /// (absent: until lifted), or lifts the lockdown (`off`).
    pub fn decide_lockdown(
        &self,
        actor: &UserId,
        level: LockLevel,
        duration_secs: Option<u32>,
        now: Millis,
    ) -> Result<Draft, Refusal> {
        self.require(actor, Action::Moderate, now)?;
        let lockdown = match level {
            LockLevel::Off if self.locked(now).is_none() => return Err(Refusal::NotLocked),
            LockLevel::Off => Lockdown { level, until: None },
            _ => Lockdown { level, until: self.until(now, duration_secs.filter(|secs| *secs > 0))? },
        };
        let event = Event::RoomUpdated(RoomUpdatedEvent {
            room: self.room().clone(),
            seq: Seq::ZERO,
            ts: Millis(0),
            from: actor.clone(),
            settings: RoomSettings { lockdown: Some(lockdown), ..RoomSettings::default() },
        });
        Ok(self.draft(event, Requires::RoleAtLeast(actor.clone(), least_role(Action::Moderate))))
    }
}

/// Checks the raid settings a `set_room` gives.
pub(super) fn check_raid_settings(settings: &RoomSettings) -> Result<(), Refusal> {
    let at_most = |field, most: u32| Refusal::OutOfRange { field, least: 0, most: u64::from(most) };
    if settings.raid_joins.is_some_and(|n| n > MAX_RAID_JOINS) {
        return Err(at_most("raid_joins", MAX_RAID_JOINS));
    }
    if settings.raid_secs.is_some_and(|s| s > MAX_RAID_SECS) {
        return Err(at_most("raid_secs", MAX_RAID_SECS));
    }
    if settings.raid_lock_secs.is_some_and(|s| s > MAX_SANCTION_SECS) {
        return Err(at_most("raid_lock_secs", MAX_SANCTION_SECS));
    }
    Ok(())
}
