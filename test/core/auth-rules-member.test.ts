// Auth rule 5: m.room.member, for every room version. Tests are named
// `v<N> <rule id>: <what>` so a failure names the rule and the version.

import { describe, test } from 'node:test';
import { checkEventAuth } from '../../src/core/auth-rules.js';
import type { JsonObject } from '../../src/core/json.js';
import type { RoomVersion } from '../../src/core/room-versions.js';
import { encodePublicKey, generateSigningKey, signJson } from '../../src/core/signing.js';
import { TestRoom } from './helpers/events.js';
import { ALICE, ALL_VERSIONS, BOB, CAROL, MOD, assertAllowed, assertRejected, n, standardRoom, versions } from './helpers/auth.js';

const DAVE = '@dave:d.test';

/** A membership event for `target` sent by `sender` (default: the target), built on top of `room`. */
function member(
  room: TestRoom,
  target: string,
  membership: string,
  options: { sender?: string; content?: JsonObject; signatures?: Record<string, Record<string, string>> } = {},
) {
  return room.build({
    type: 'm.room.member',
    sender: options.sender ?? target,
    stateKey: target,
    content: { membership, ...(options.content ?? {}) },
    ...(options.signatures ? { signatures: options.signatures } : {}),
  });
}

function check(room: TestRoom, event: ReturnType<typeof member>) {
  return checkEventAuth(event, room.state, room.version);
}

describe('rule 5.1: shape', () => {
  for (const version of ALL_VERSIONS) {
    const v = n(version);
    test(`v${v} member.no_state_key: a member event without state_key is rejected`, () => {
      const room = standardRoom(version, { joinRule: 'public' });
      const event = room.build({ type: 'm.room.member', sender: CAROL, content: { membership: 'join' } });
      assertRejected(check(room, event), 'member.no_state_key');
    });

    test(`v${v} member.no_membership: a member event without content.membership is rejected`, () => {
      const room = standardRoom(version, { joinRule: 'public' });
      const event = room.build({ type: 'm.room.member', sender: CAROL, stateKey: CAROL, content: {} });
      assertRejected(check(room, event), 'member.no_membership');
    });

    test(`v${v} member.unknown_membership: an unknown membership is rejected`, () => {
      const room = standardRoom(version, { joinRule: 'public' });
      assertRejected(check(room, member(room, BOB, 'vanish')), 'member.unknown_membership');
    });
  }
});

describe('rule 5.3.1: the creator joins first', () => {
  for (const version of ALL_VERSIONS) {
    const v = n(version);
    test(`v${v} member.join.creator: the creator's join right after the create event is allowed`, () => {
      const room = new TestRoom(version, ALICE);
      const join = member(room, ALICE, 'join');
      assertAllowed(check(room, join));
    });

    test(`v${v} member.join.not_invited: the creator's join later on follows the ordinary rules`, () => {
      const room = new TestRoom(version, ALICE);
      room.send({ type: 'm.room.message', sender: ALICE, content: {} });
      assertRejected(check(room, member(room, ALICE, 'join')), 'member.join.not_invited');
    });

    test(`v${v} member.join.not_invited: someone else's join right after the create event is not special`, () => {
      const room = new TestRoom(version, ALICE);
      assertRejected(check(room, member(room, BOB, 'join')), 'member.join.not_invited');
    });
  }

  for (const version of versions(1, 10)) {
    test(`v${n(version)} member.join.creator: the creator is content.creator, not the create sender`, () => {
      const room = new TestRoom(version, ALICE, { createContent: { creator: BOB } });
      assertAllowed(check(room, member(room, BOB, 'join')));
      assertRejected(check(room, member(room, ALICE, 'join')), 'member.join.not_invited');
    });
  }

  for (const version of versions(11)) {
    test(`v${n(version)} member.join.creator: the creator is the create sender; content.creator is ignored`, () => {
      const room = new TestRoom(version, ALICE, { createContent: { creator: BOB } });
      assertAllowed(check(room, member(room, ALICE, 'join')));
      assertRejected(check(room, member(room, BOB, 'join')), 'member.join.not_invited');
    });
  }

  for (const version of versions(12)) {
    test(`v${n(version)} member.join.creator: an additional creator's first join is not the creator's join`, () => {
      const room = new TestRoom(version, ALICE, { additionalCreators: [BOB] });
      assertRejected(check(room, member(room, BOB, 'join')), 'member.join.not_invited');
    });
  }
});

describe('rule 5.3: join', () => {
  for (const version of ALL_VERSIONS) {
    const v = n(version);
    test(`v${v} member.join.not_self: nobody can join someone else`, () => {
      const room = standardRoom(version, { joinRule: 'public' });
      assertRejected(check(room, member(room, CAROL, 'join', { sender: ALICE })), 'member.join.not_self');
    });

    test(`v${v} member.join.banned: a banned user cannot join, even a public room`, () => {
      const room = standardRoom(version, { joinRule: 'public' });
      room.member(CAROL, 'ban', { sender: ALICE });
      assertRejected(check(room, member(room, CAROL, 'join')), 'member.join.banned');
    });

    test(`v${v} member.join.public: anyone can join a public room`, () => {
      const room = standardRoom(version, { joinRule: 'public' });
      assertAllowed(check(room, member(room, CAROL, 'join')));
      room.member(BOB, 'leave');
      assertAllowed(check(room, member(room, BOB, 'join')));
    });

    test(`v${v} member.join.not_invited: an invite-only room needs an invite (or an existing join)`, () => {
      const room = standardRoom(version, { joinRule: 'invite' });
      assertRejected(check(room, member(room, CAROL, 'join')), 'member.join.not_invited');
      room.member(CAROL, 'invite', { sender: ALICE });
      assertAllowed(check(room, member(room, CAROL, 'join')));
      // Re-joining (a profile change) is allowed.
      assertAllowed(check(room, member(room, BOB, 'join', { content: { displayname: 'Bob' } })));
    });

    test(`v${v} member.join.not_invited: with no join rules event the room is invite-only`, () => {
      const room = new TestRoom(version, ALICE);
      room.member(ALICE, 'join');
      assertRejected(check(room, member(room, BOB, 'join')), 'member.join.not_invited');
      room.member(BOB, 'invite', { sender: ALICE });
      assertAllowed(check(room, member(room, BOB, 'join')));
    });

    test(`v${v} member.join.not_allowed: an unknown join rule lets nobody in`, () => {
      const room = standardRoom(version, { joinRule: 'private' });
      room.member(CAROL, 'invite', { sender: ALICE });
      assertRejected(check(room, member(room, CAROL, 'join')), 'member.join.not_allowed');
    });
  }

  for (const version of versions(7)) {
    test(`v${n(version)} member.join.not_invited: the knock join rule behaves like invite for joins`, () => {
      const room = standardRoom(version, { joinRule: 'knock' });
      assertRejected(check(room, member(room, CAROL, 'join')), 'member.join.not_invited');
      room.member(CAROL, 'knock');
      assertRejected(check(room, member(room, CAROL, 'join')), 'member.join.not_invited');
      room.member(CAROL, 'invite', { sender: ALICE });
      assertAllowed(check(room, member(room, CAROL, 'join')));
    });
  }

  for (const version of versions(1, 6)) {
    test(`v${n(version)} member.join.not_allowed: knock is not a join rule before v7`, () => {
      const room = standardRoom(version, { joinRule: 'knock' });
      room.member(CAROL, 'invite', { sender: ALICE });
      assertRejected(check(room, member(room, CAROL, 'join')), 'member.join.not_allowed');
    });
  }
});

/** Tests of restricted-style join rules (`restricted` v8+, `knock_restricted` v10+). */
function restrictedJoinTests(joinRule: 'restricted' | 'knock_restricted', from: number) {
  const signedBy = (...servers: string[]) => Object.fromEntries(servers.map((s) => [s, { 'ed25519:k': 'c2ln' }]));

  for (const version of versions(from)) {
    const v = n(version);
    const setup = () => standardRoom(version, { joinRule });

    test(`v${v} member.join.${joinRule}: a join authorised by a joined user who may invite is allowed`, () => {
      const room = setup();
      const join = member(room, CAROL, 'join', {
        content: { join_authorised_via_users_server: MOD },
        signatures: signedBy('c.test', 'a.test'),
      });
      assertAllowed(check(room, join));
    });

    test(`v${v} member.join.${joinRule}: invited or joined users need no authoriser`, () => {
      const room = setup();
      room.member(CAROL, 'invite', { sender: ALICE });
      assertAllowed(check(room, member(room, CAROL, 'join')));
      assertAllowed(check(room, member(room, BOB, 'join')));
    });

    test(`v${v} member.authoriser.unsigned: the authorising user's server must have signed the join`, () => {
      const room = setup();
      const join = member(room, CAROL, 'join', {
        content: { join_authorised_via_users_server: MOD },
        signatures: signedBy('c.test'),
      });
      assertRejected(check(room, join), 'member.authoriser.unsigned');
      const notAUser = member(room, CAROL, 'join', {
        content: { join_authorised_via_users_server: 42 },
        signatures: signedBy('c.test'),
      });
      assertRejected(check(room, notAUser), 'member.authoriser.unsigned');
    });

    test(`v${v} member.join.no_authoriser: an uninvited join needs join_authorised_via_users_server`, () => {
      const room = setup();
      assertRejected(check(room, member(room, CAROL, 'join')), 'member.join.no_authoriser');
    });

    test(`v${v} member.join.authoriser_not_joined: the authorising user must be joined`, () => {
      const room = setup();
      room.member(MOD, 'leave');
      const join = member(room, CAROL, 'join', {
        content: { join_authorised_via_users_server: MOD },
        signatures: signedBy('c.test', 'a.test'),
      });
      assertRejected(check(room, join), 'member.join.authoriser_not_joined');
      const stranger = member(room, CAROL, 'join', {
        content: { join_authorised_via_users_server: DAVE },
        signatures: signedBy('c.test', 'd.test'),
      });
      assertRejected(check(room, stranger), 'member.join.authoriser_not_joined');
    });

    test(`v${v} member.join.authoriser_cannot_invite: the authorising user needs the invite level`, () => {
      const room = standardRoom(version, { joinRule, levels: { invite: 60 } });
      const join = member(room, CAROL, 'join', {
        content: { join_authorised_via_users_server: MOD },
        signatures: signedBy('c.test', 'a.test'),
      });
      assertRejected(check(room, join), 'member.join.authoriser_cannot_invite');
      const byCreator = member(room, CAROL, 'join', {
        content: { join_authorised_via_users_server: ALICE },
        signatures: signedBy('c.test', 'a.test'),
      });
      assertAllowed(check(room, byCreator));
    });

    test(`v${v} member.join.banned: a banned user cannot use ${joinRule}`, () => {
      const room = setup();
      room.member(CAROL, 'ban', { sender: ALICE });
      const join = member(room, CAROL, 'join', {
        content: { join_authorised_via_users_server: MOD },
        signatures: signedBy('c.test', 'a.test'),
      });
      assertRejected(check(room, join), 'member.join.banned');
    });
  }

  for (const version of versions(1, from - 1)) {
    test(`v${n(version)} member.join.not_allowed: ${joinRule} is not a join rule in this version`, () => {
      const room = standardRoom(version, { joinRule });
      const join = member(room, CAROL, 'join', {
        content: { join_authorised_via_users_server: MOD },
        signatures: signedBy('c.test', 'a.test'),
      });
      assertRejected(check(room, join), 'member.join.not_allowed');
    });
  }
}

describe('rule 5.3.5: restricted joins', () => restrictedJoinTests('restricted', 8));
describe('rule 5.3.5: knock_restricted joins', () => restrictedJoinTests('knock_restricted', 10));

describe('rule 5.4: invite', () => {
  for (const version of ALL_VERSIONS) {
    const v = n(version);
    test(`v${v} member.invite: a joined user with the invite level may invite`, () => {
      const room = standardRoom(version);
      assertAllowed(check(room, member(room, CAROL, 'invite', { sender: BOB })));
      room.member(DAVE, 'invite', { sender: ALICE });
      room.member(DAVE, 'leave');
      assertAllowed(check(room, member(room, DAVE, 'invite', { sender: BOB })));
    });

    test(`v${v} member.invite.sender_not_joined: the inviter must be joined`, () => {
      const room = standardRoom(version);
      assertRejected(check(room, member(room, DAVE, 'invite', { sender: CAROL })), 'member.invite.sender_not_joined');
    });

    test(`v${v} member.invite.target_banned: a banned user cannot be invited`, () => {
      const room = standardRoom(version);
      room.member(CAROL, 'ban', { sender: ALICE });
      assertRejected(check(room, member(room, CAROL, 'invite', { sender: ALICE })), 'member.invite.target_banned');
    });

    test(`v${v} member.invite.target_joined: a joined user cannot be invited`, () => {
      const room = standardRoom(version);
      assertRejected(check(room, member(room, BOB, 'invite', { sender: ALICE })), 'member.invite.target_joined');
    });

    test(`v${v} member.invite.insufficient_power: the inviter needs the invite level`, () => {
      const room = standardRoom(version, { levels: { invite: 50 } });
      assertRejected(check(room, member(room, CAROL, 'invite', { sender: BOB })), 'member.invite.insufficient_power');
      assertAllowed(check(room, member(room, CAROL, 'invite', { sender: MOD })));
    });
  }

  for (const version of versions(7)) {
    test(`v${n(version)} member.invite: a user who knocked can be invited`, () => {
      const room = standardRoom(version, { joinRule: 'knock' });
      room.member(CAROL, 'knock');
      assertAllowed(check(room, member(room, CAROL, 'invite', { sender: BOB })));
    });
  }
});

describe('rule 5.4.1: third-party invites', () => {
  const identityServerKey = generateSigningKey('0');
  const otherKey = generateSigningKey('1');
  const TOKEN = 'abc123';

  /** A room where BOB issued a third-party invite with `publicKeyContent`. */
  function setup(version: RoomVersion, publicKeyContent: JsonObject = { public_key: encodePublicKey(identityServerKey) }) {
    const room = standardRoom(version);
    room.send({
      type: 'm.room.third_party_invite',
      sender: BOB,
      stateKey: TOKEN,
      content: { display_name: 'c...@example.org', key_validity_url: 'https://id.test/isvalid', ...publicKeyContent },
    });
    return room;
  }

  function signed(fields: JsonObject = {}, key = identityServerKey): JsonObject {
    return signJson({ mxid: CAROL, token: TOKEN, ...fields }, 'id.test', key);
  }

  function invite(room: TestRoom, signedBlock: JsonObject | undefined, options: { sender?: string; target?: string } = {}) {
    return member(room, options.target ?? CAROL, 'invite', {
      sender: options.sender ?? BOB,
      content: { third_party_invite: signedBlock === undefined ? { display_name: 'x' } : { display_name: 'x', signed: signedBlock } },
    });
  }

  for (const version of ALL_VERSIONS) {
    const v = n(version);
    test(`v${v} member.invite.3pid: a signature by the invite's public_key is allowed`, () => {
      const room = setup(version);
      assertAllowed(check(room, invite(room, signed())));
    });

    test(`v${v} member.invite.3pid: a signature by one of public_keys is allowed`, () => {
      const room = setup(version, {
        public_key: encodePublicKey(otherKey),
        public_keys: [{ public_key: encodePublicKey(otherKey) }, { public_key: encodePublicKey(identityServerKey), key_validity_url: 'x' }],
      });
      assertAllowed(check(room, invite(room, signed())));
    });

    test(`v${v} member.invite.3pid.bad_signature: a signature by another key, or a tampered block, is rejected`, () => {
      const room = setup(version);
      assertRejected(check(room, invite(room, signed({}, otherKey))), 'member.invite.3pid.bad_signature');
      const tampered = { ...signed(), extra: 'field' };
      assertRejected(check(room, invite(room, tampered)), 'member.invite.3pid.bad_signature');
      const unsignedBlock = { mxid: CAROL, token: TOKEN };
      assertRejected(check(room, invite(room, unsignedBlock)), 'member.invite.3pid.bad_signature');
    });

    test(`v${v} member.invite.3pid.target_banned: a banned target cannot be invited by third-party invite`, () => {
      const room = setup(version);
      room.member(CAROL, 'ban', { sender: ALICE });
      assertRejected(check(room, invite(room, signed())), 'member.invite.3pid.target_banned');
    });

    test(`v${v} member.invite.3pid.no_signed: third_party_invite needs signed`, () => {
      const room = setup(version);
      assertRejected(check(room, invite(room, undefined)), 'member.invite.3pid.no_signed');
    });

    test(`v${v} member.invite.3pid.signed_incomplete: signed needs mxid and token`, () => {
      const room = setup(version);
      const noMxid = signJson({ token: TOKEN }, 'id.test', identityServerKey);
      assertRejected(check(room, invite(room, noMxid)), 'member.invite.3pid.signed_incomplete');
      const noToken = signJson({ mxid: CAROL }, 'id.test', identityServerKey);
      assertRejected(check(room, invite(room, noToken)), 'member.invite.3pid.signed_incomplete');
    });

    test(`v${v} member.invite.3pid.mxid_mismatch: signed.mxid must be the invited user`, () => {
      const room = setup(version);
      assertRejected(check(room, invite(room, signed(), { target: DAVE })), 'member.invite.3pid.mxid_mismatch');
    });

    test(`v${v} member.invite.3pid.no_invite_event: the token must name an m.room.third_party_invite`, () => {
      const room = setup(version);
      assertRejected(check(room, invite(room, signed({ token: 'other' }))), 'member.invite.3pid.no_invite_event');
    });

    test(`v${v} member.invite.3pid.sender_mismatch: the invite must come from the third-party invite's sender`, () => {
      const room = setup(version);
      assertRejected(check(room, invite(room, signed(), { sender: MOD })), 'member.invite.3pid.sender_mismatch');
    });
  }
});

describe('rule 5.5: leave', () => {
  for (const version of ALL_VERSIONS) {
    const v = n(version);
    test(`v${v} member.leave: joined and invited users may leave (reject an invite)`, () => {
      const room = standardRoom(version);
      assertAllowed(check(room, member(room, BOB, 'leave')));
      room.member(CAROL, 'invite', { sender: ALICE });
      assertAllowed(check(room, member(room, CAROL, 'leave')));
    });

    test(`v${v} member.leave.not_member: users who are not in the room cannot leave it`, () => {
      const room = standardRoom(version);
      assertRejected(check(room, member(room, CAROL, 'leave')), 'member.leave.not_member');
      room.member(BOB, 'leave');
      assertRejected(check(room, member(room, BOB, 'leave')), 'member.leave.not_member');
      room.member(DAVE, 'ban', { sender: ALICE });
      assertRejected(check(room, member(room, DAVE, 'leave')), 'member.leave.not_member');
    });

    test(`v${v} member.leave.sender_not_joined: kicking needs the kicker to be joined`, () => {
      const room = standardRoom(version, { users: { [CAROL]: 100 } });
      assertRejected(check(room, member(room, BOB, 'leave', { sender: CAROL })), 'member.leave.sender_not_joined');
    });

    test(`v${v} member.leave.kick_insufficient_power: kicking needs the kick level`, () => {
      const room = standardRoom(version, { levels: { kick: 60 } });
      assertRejected(check(room, member(room, BOB, 'leave', { sender: MOD })), 'member.leave.kick_insufficient_power');
    });

    test(`v${v} member.leave.target_not_below_sender: kicking needs more power than the target`, () => {
      const room = standardRoom(version, { users: { '@mod2:a.test': 50 } });
      room.member('@mod2:a.test', 'join');
      assertRejected(check(room, member(room, '@mod2:a.test', 'leave', { sender: MOD })), 'member.leave.target_not_below_sender');
      assertAllowed(check(room, member(room, BOB, 'leave', { sender: MOD })));
      // Kicking someone who is only invited works the same way.
      room.member(CAROL, 'invite', { sender: ALICE });
      assertAllowed(check(room, member(room, CAROL, 'leave', { sender: MOD })));
    });

    test(`v${v} member.leave.unban_insufficient_power: unbanning needs the ban level`, () => {
      const room = standardRoom(version, { levels: { ban: 75, kick: 50 } });
      room.member(CAROL, 'ban', { sender: ALICE });
      assertRejected(check(room, member(room, CAROL, 'leave', { sender: MOD })), 'member.leave.unban_insufficient_power');
    });

    test(`v${v} member.leave.kick_insufficient_power: unbanning also needs the kick level`, () => {
      const room = standardRoom(version, { levels: { ban: 50, kick: 75 } });
      room.member(CAROL, 'ban', { sender: ALICE });
      assertRejected(check(room, member(room, CAROL, 'leave', { sender: MOD })), 'member.leave.kick_insufficient_power');
    });

    test(`v${v} member.leave: unbanning with both the kick and ban levels, above the target, is allowed`, () => {
      const room = standardRoom(version, { levels: { ban: 50, kick: 50 } });
      room.member(CAROL, 'ban', { sender: ALICE });
      assertAllowed(check(room, member(room, CAROL, 'leave', { sender: MOD })));
    });
  }

  for (const version of versions(7)) {
    test(`v${n(version)} member.leave: a user may retract a knock`, () => {
      const room = standardRoom(version, { joinRule: 'knock' });
      room.member(CAROL, 'knock');
      assertAllowed(check(room, member(room, CAROL, 'leave')));
    });
  }
});

describe('rule 5.6: ban', () => {
  for (const version of ALL_VERSIONS) {
    const v = n(version);
    test(`v${v} member.ban: a joined user with the ban level may ban lower users and strangers`, () => {
      const room = standardRoom(version);
      assertAllowed(check(room, member(room, BOB, 'ban', { sender: MOD })));
      assertAllowed(check(room, member(room, CAROL, 'ban', { sender: MOD })));
    });

    test(`v${v} member.ban.sender_not_joined: the banner must be joined`, () => {
      const room = standardRoom(version, { users: { [CAROL]: 100 } });
      assertRejected(check(room, member(room, BOB, 'ban', { sender: CAROL })), 'member.ban.sender_not_joined');
    });

    test(`v${v} member.ban.insufficient_power: banning needs the ban level`, () => {
      const room = standardRoom(version, { levels: { ban: 60 } });
      assertRejected(check(room, member(room, BOB, 'ban', { sender: MOD })), 'member.ban.insufficient_power');
    });

    test(`v${v} member.ban.target_not_below_sender: banning needs more power than the target`, () => {
      const room = standardRoom(version, { users: { '@mod2:a.test': 50 } });
      assertRejected(check(room, member(room, '@mod2:a.test', 'ban', { sender: MOD })), 'member.ban.target_not_below_sender');
      assertRejected(check(room, member(room, ALICE, 'ban', { sender: MOD })), 'member.ban.target_not_below_sender');
    });
  }

  for (const version of versions(12)) {
    const v = n(version);
    test(`v${v} member.ban.target_not_below_sender: creators cannot be banned, not even by another creator`, () => {
      const room = standardRoom(version, { additionalCreators: [BOB] });
      assertRejected(check(room, member(room, BOB, 'ban', { sender: ALICE })), 'member.ban.target_not_below_sender');
      assertRejected(check(room, member(room, ALICE, 'ban', { sender: BOB })), 'member.ban.target_not_below_sender');
      assertAllowed(check(room, member(room, MOD, 'ban', { sender: BOB })));
    });

    test(`v${v} member.leave.target_not_below_sender: creators cannot be kicked, not even by another creator`, () => {
      const room = standardRoom(version, { additionalCreators: [BOB] });
      assertRejected(check(room, member(room, ALICE, 'leave', { sender: BOB })), 'member.leave.target_not_below_sender');
      assertRejected(check(room, member(room, BOB, 'leave', { sender: ALICE })), 'member.leave.target_not_below_sender');
      // A creator may still leave of their own accord.
      assertAllowed(check(room, member(room, BOB, 'leave')));
    });

    test(`v${v} member.ban: a creator can ban a user listed at any level`, () => {
      const room = standardRoom(version, { users: { [CAROL]: 1_000_000 } });
      room.member(CAROL, 'invite', { sender: ALICE });
      room.member(CAROL, 'join');
      assertAllowed(check(room, member(room, CAROL, 'ban', { sender: ALICE })));
    });
  }

  for (const version of versions(1, 11)) {
    test(`v${n(version)} member.ban: additional_creators gives no power before v12`, () => {
      const room = standardRoom(version, { additionalCreators: [BOB] });
      assertAllowed(check(room, member(room, BOB, 'ban', { sender: ALICE })));
      assertRejected(check(room, member(room, MOD, 'ban', { sender: BOB })), 'member.ban.insufficient_power');
    });
  }
});

describe('rule 5.7: knock', () => {
  for (const version of versions(7)) {
    const v = n(version);
    test(`v${v} member.knock: anyone not banned, invited or joined may knock, and knock again`, () => {
      const room = standardRoom(version, { joinRule: 'knock' });
      assertAllowed(check(room, member(room, CAROL, 'knock')));
      room.member(CAROL, 'knock');
      assertAllowed(check(room, member(room, CAROL, 'knock')));
      room.member(CAROL, 'leave');
      assertAllowed(check(room, member(room, CAROL, 'knock')));
    });

    test(`v${v} member.knock.join_rule: knocking needs the knock join rule`, () => {
      for (const joinRule of ['invite', 'public', 'restricted']) {
        const room = standardRoom(version, { joinRule });
        assertRejected(check(room, member(room, CAROL, 'knock')), 'member.knock.join_rule');
      }
    });

    test(`v${v} member.knock.not_self: nobody can knock for someone else`, () => {
      const room = standardRoom(version, { joinRule: 'knock' });
      assertRejected(check(room, member(room, CAROL, 'knock', { sender: BOB })), 'member.knock.not_self');
    });

    test(`v${v} member.knock.banned: banned users cannot knock`, () => {
      const room = standardRoom(version, { joinRule: 'knock' });
      room.member(CAROL, 'ban', { sender: ALICE });
      assertRejected(check(room, member(room, CAROL, 'knock')), 'member.knock.banned');
    });

    test(`v${v} member.knock.invited: invited users cannot knock`, () => {
      const room = standardRoom(version, { joinRule: 'knock' });
      room.member(CAROL, 'invite', { sender: ALICE });
      assertRejected(check(room, member(room, CAROL, 'knock')), 'member.knock.invited');
    });

    test(`v${v} member.knock.joined: joined users cannot knock`, () => {
      const room = standardRoom(version, { joinRule: 'knock' });
      assertRejected(check(room, member(room, BOB, 'knock')), 'member.knock.joined');
    });
  }

  for (const version of versions(10)) {
    test(`v${n(version)} member.knock: knock_restricted allows knocking`, () => {
      const room = standardRoom(version, { joinRule: 'knock_restricted' });
      assertAllowed(check(room, member(room, CAROL, 'knock')));
    });
  }

  for (const version of versions(7, 9)) {
    test(`v${n(version)} member.knock.join_rule: knock_restricted is not a join rule before v10`, () => {
      const room = standardRoom(version, { joinRule: 'knock_restricted' });
      assertRejected(check(room, member(room, CAROL, 'knock')), 'member.knock.join_rule');
    });
  }

  for (const version of versions(1, 6)) {
    test(`v${n(version)} member.unknown_membership: knock is not a membership before v7`, () => {
      const room = standardRoom(version, { joinRule: 'knock' });
      assertRejected(check(room, member(room, CAROL, 'knock')), 'member.unknown_membership');
      room.member(BOB, 'knock');
      // A knock membership in state means nothing here: leaving from it is not allowed.
      assertRejected(check(room, member(room, BOB, 'leave')), 'member.leave.not_member');
    });
  }
});

describe('rule 4 applies to membership too', () => {
  for (const version of ALL_VERSIONS) {
    test(`v${n(version)} federate.disallowed: remote users cannot join an unfederated room`, () => {
      const room = standardRoom(version, { joinRule: 'public', createContent: { 'm.federate': false } });
      assertRejected(check(room, member(room, CAROL, 'join')), 'federate.disallowed');
      assertAllowed(check(room, member(room, '@local:a.test', 'join')));
    });
  }
});
