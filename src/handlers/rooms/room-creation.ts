// Room creation (`POST /createRoom`): turns the request into the initial events of a new room,
// in the order Synapse sends them, and has the events writer persist them in one go.
//
// Every creation gets a room id of its own. In room version 12 the room id is the create event's
// event id, a hash of the event (spec: appendices, §Room IDs; MSC4291), and two creations by one
// user with the same `creation_content` differ only in `origin_server_ts`, which is ours to
// choose: this process never gives one creator the same timestamp twice. Another process may (one
// client's creations can reach several workers at once), and before v12 a random id can repeat,
// however unlikely; the events writer refuses a room id that is taken, and the creation is tried
// again with a new create event.

import { randomBytes, randomInt } from 'node:crypto';
import { stateKey as makeStateKey, type StateKey } from '../../core/events.js';
import { isValidUserId, parseRoomAlias } from '../../core/identifiers.js';
import { isJsonObject, type JsonObject } from '../../core/json.js';
import { getRoomVersion, type RoomVersion } from '../../core/room-versions.js';
import { Errors } from '../../errors.js';
import { componentLogger, type Logger } from '../../util/log.js';
import { LruCache } from '../../util/lru.js';
import type { CoreParts } from '../kernel/core.js';
import { buildCreateEvent, isRoomIdTaken, type CreateRoomPlan, type EventDraft } from '../kernel/events-writer.js';
import { memberContent, type MembershipHandler } from './membership.js';

export type Preset = 'private_chat' | 'trusted_private_chat' | 'public_chat';

interface PresetConfig {
  joinRule: string;
  historyVisibility: string;
  invitesAreCreators: boolean;
  guestCanJoin: boolean;
  powerLevelOverride: JsonObject;
}

const PRESETS: Record<Preset, PresetConfig> = {
  private_chat: {
    joinRule: 'invite',
    historyVisibility: 'shared',
    invitesAreCreators: false,
    guestCanJoin: true,
    powerLevelOverride: { invite: 0 },
  },
  trusted_private_chat: {
    joinRule: 'invite',
    historyVisibility: 'shared',
    invitesAreCreators: true,
    guestCanJoin: true,
    powerLevelOverride: { invite: 0 },
  },
  public_chat: { joinRule: 'public', historyVisibility: 'shared', invitesAreCreators: false, guestCanJoin: false, powerLevelOverride: {} },
};

function optionalString(body: JsonObject, key: string): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw Errors.badJson(`"${key}" must be a string`);
  return value;
}

/** How many create events a creation tries while the room id each gives is taken. */
const ROOM_ID_ATTEMPTS = 5;
/** What a client that still met taken room ids is asked to wait before trying again. */
const ROOM_ID_RETRY_AFTER_MS = 1_000;

export interface RoomCreationOptions {
  /** The random localpart of a room id before v12 (a test repeats one to make ids collide). */
  roomLocalpart?: () => string;
}

export class RoomCreationHandler {
  /** Each creator's latest create event timestamp here, so that the next one is later. */
  private readonly lastCreateTs = new LruCache<string, number>(10_000);
  private readonly roomLocalpart: () => string;
  private readonly log: Logger;

  constructor(
    private readonly core: CoreParts<'config' | 'serverName' | 'signingKey' | 'log' | 'now' | 'eventsWriter', 'users' | 'directory'>,
    private readonly membership: MembershipHandler,
    options: RoomCreationOptions = {},
  ) {
    this.roomLocalpart = options.roomLocalpart ?? randomRoomLocalpart;
    this.log = componentLogger(core.log, 'rooms.creation');
  }

  async createRoom(creator: string, body: JsonObject): Promise<{ room_id: string; room_alias?: string }> {
    const { serverName } = this.core;
    const visibility = optionalString(body, 'visibility') ?? 'private';
    if (visibility !== 'public' && visibility !== 'private') throw Errors.badJson('"visibility" must be "public" or "private"');
    const presetName = (optionalString(body, 'preset') ?? (visibility === 'public' ? 'public_chat' : 'private_chat')) as Preset;
    const preset = PRESETS[presetName];
    if (!preset) throw Errors.badJson(`'${presetName}' is not a valid preset`);

    const versionId = optionalString(body, 'room_version') ?? this.core.config.default_room_version;
    const version = getRoomVersion(versionId);
    if (!version)
      throw Errors.unsupportedRoomVersion(
        `Your homeserver does not support the features required to join this room (room version ${versionId})`,
      );

    const invitees = body.invite === undefined ? [] : body.invite;
    if (!Array.isArray(invitees) || !invitees.every((u) => typeof u === 'string'))
      throw Errors.badJson('"invite" must be a list of user ids');
    for (const userId of invitees) {
      if (!isValidUserId(userId)) throw Errors.invalidParam(`"${userId}" is not a valid user id`);
    }
    const isDirect = body.is_direct === true;

    let alias: string | undefined;
    const aliasName = optionalString(body, 'room_alias_name');
    if (aliasName !== undefined) {
      alias = `#${aliasName}:${serverName}`;
      if (aliasName.includes(':') || aliasName.includes('#') || /\s/.test(aliasName) || !parseRoomAlias(alias)) {
        throw Errors.invalidParam(`Invalid characters in room alias`);
      }
      const taken = (await this.core.stores.directory.roomIdForAlias(alias)) !== undefined;
      if (taken) throw Errors.roomInUse('Room alias already taken');
    }

    const createContent: JsonObject = {};
    if (body.creation_content !== undefined) {
      if (!isJsonObject(body.creation_content)) throw Errors.badJson('"creation_content" must be an object');
      Object.assign(createContent, body.creation_content);
    }
    delete createContent.room_version;
    delete createContent.creator;
    const additionalCreators: string[] = [];
    if (version.privilegedCreators) {
      const given = createContent.additional_creators;
      if (given !== undefined && (!Array.isArray(given) || !given.every((u) => typeof u === 'string' && isValidUserId(u)))) {
        throw Errors.badJson('"additional_creators" must be a list of user ids');
      }
      additionalCreators.push(...((given as string[] | undefined) ?? []));
      // With trusted_private_chat, invitees get full power: in v12 that means being creators.
      if (preset.invitesAreCreators)
        for (const userId of invitees) if (!additionalCreators.includes(userId)) additionalCreators.push(userId);
      if (additionalCreators.length) createContent.additional_creators = additionalCreators;
    }

    const initialState = new Map<StateKey, EventDraft>();
    if (body.initial_state !== undefined) {
      if (!Array.isArray(body.initial_state)) throw Errors.badJson('"initial_state" must be a list');
      for (const entry of body.initial_state) {
        if (!isJsonObject(entry) || typeof entry.type !== 'string' || !isJsonObject(entry.content)) {
          throw Errors.badJson('each "initial_state" entry needs a "type" string and a "content" object');
        }
        const key = entry.state_key ?? '';
        if (typeof key !== 'string') throw Errors.badJson('"state_key" must be a string');
        initialState.set(makeStateKey(entry.type, key), { type: entry.type, stateKey: key, sender: creator, content: entry.content });
      }
    }
    const state = (type: string, content: JsonObject): EventDraft => ({ type, stateKey: '', sender: creator, content });
    const takeInitial = (type: string): EventDraft | undefined => {
      const key = makeStateKey(type, '');
      const draft = initialState.get(key);
      initialState.delete(key);
      return draft;
    };

    const profile = await this.core.stores.users.getProfile(creator);
    const events: EventDraft[] = [{ type: 'm.room.member', stateKey: creator, sender: creator, content: memberContent('join', profile) }];

    const powerLevels =
      takeInitial('m.room.power_levels') ??
      state('m.room.power_levels', this.defaultPowerLevels(creator, invitees, preset, version.privilegedCreators, body));
    if (version.privilegedCreators) {
      // Creators have infinite power in v12 and must not be listed (auth rule 10.4).
      const users = powerLevels.content.users;
      if (isJsonObject(users)) {
        const kept = { ...users };
        for (const c of [creator, ...additionalCreators]) delete kept[c];
        powerLevels.content = { ...powerLevels.content, users: kept };
      }
    }
    events.push(powerLevels);
    if (alias && !initialState.has(makeStateKey('m.room.canonical_alias', ''))) events.push(state('m.room.canonical_alias', { alias }));
    events.push(takeInitial('m.room.join_rules') ?? state('m.room.join_rules', { join_rule: preset.joinRule }));
    events.push(
      takeInitial('m.room.history_visibility') ?? state('m.room.history_visibility', { history_visibility: preset.historyVisibility }),
    );
    if (preset.guestCanJoin) events.push(takeInitial('m.room.guest_access') ?? state('m.room.guest_access', { guest_access: 'can_join' }));
    events.push(...initialState.values());
    const name = optionalString(body, 'name');
    if (name !== undefined) events.push(state('m.room.name', { name }));
    const topic = optionalString(body, 'topic');
    if (topic !== undefined) events.push(state('m.room.topic', { topic, 'm.topic': [{ mimetype: 'text/plain', body: topic }] }));

    const roomId = await this.createWithOwnId(version, createContent, {
      roomVersion: version.id,
      creator,
      initialEvents: events,
      isPublic: visibility === 'public',
      aliases: alias ? [alias] : [],
    });

    for (const invitee of invitees) {
      await this.membership.invite(roomId, creator, invitee, { isDirect });
    }
    return alias ? { room_id: roomId, room_alias: alias } : { room_id: roomId };
  }

  /**
   * Builds the create event and has the events writer create the room; while the room id it
   * gives is taken, again with a new create event (a later timestamp; before v12, a new random
   * id). A creation that meets taken ids every time is refused with 429, never a 5xx.
   */
  private async createWithOwnId(version: RoomVersion, content: JsonObject, plan: Omit<CreateRoomPlan, 'createEvent'>): Promise<string> {
    const { serverName, signingKey } = this.core;
    const { creator } = plan;
    for (let attempt = 1; ; attempt++) {
      const create = buildCreateEvent(
        {
          version,
          creator,
          content,
          roomId: version.roomIdFromCreateEvent ? undefined : `!${this.roomLocalpart()}:${serverName}`,
          now: this.createTimestamp(creator, attempt > 1),
        },
        serverName,
        signingKey,
      );
      try {
        return (await this.core.eventsWriter.createRoom({ ...plan, createEvent: create.pdu })).roomId;
      } catch (err) {
        if (!isRoomIdTaken(err)) throw err;
        if (attempt >= ROOM_ID_ATTEMPTS) {
          this.log.warn({ creator, attempts: attempt }, 'every room id tried for a new room was taken; the client is asked to try again');
          throw Errors.limitExceeded(ROOM_ID_RETRY_AFTER_MS);
        }
        this.log.info({ creator, roomId: create.roomId, attempt }, 'the room id of a new room is taken; trying another create event');
      }
    }
  }

  /**
   * The `origin_server_ts` of a creator's new create event: now, but after the creator's previous
   * one here, so this process never builds the same v12 create event (hence room id) twice. After
   * a collision with another process's creation it also moves on by a random few milliseconds, so
   * two processes that collided do not collide again in step.
   */
  private createTimestamp(creator: string, afterCollision: boolean): number {
    const previous = this.lastCreateTs.get(creator);
    let ts = previous === undefined ? this.core.now() : Math.max(this.core.now(), previous + 1);
    if (afterCollision) ts += randomInt(1, 17);
    this.lastCreateTs.set(creator, ts);
    return ts;
  }

  private defaultPowerLevels(
    creator: string,
    invitees: string[],
    preset: PresetConfig,
    privilegedCreators: boolean,
    body: JsonObject,
  ): JsonObject {
    const users: JsonObject = privilegedCreators ? {} : { [creator]: 100 };
    if (preset.invitesAreCreators && !privilegedCreators) for (const invitee of invitees) users[invitee] = 100;
    const content: JsonObject = {
      users,
      users_default: 0,
      events: {
        'm.room.name': 50,
        'm.room.power_levels': 100,
        'm.room.history_visibility': 100,
        'm.room.canonical_alias': 50,
        'm.room.avatar': 50,
        // In v12 creators outrank 100, so the tombstone (room upgrades) is kept for them.
        'm.room.tombstone': privilegedCreators ? 150 : 100,
        'm.room.server_acl': 100,
        'm.room.encryption': 100,
      },
      events_default: 0,
      state_default: 50,
      ban: 50,
      kick: 50,
      redact: 50,
      invite: 50,
      historical: 100,
      ...preset.powerLevelOverride,
    };
    const override = body.power_level_content_override;
    if (override !== undefined) {
      if (!isJsonObject(override)) throw Errors.badJson('"power_level_content_override" must be an object');
      Object.assign(content, override);
    }
    return content;
  }
}

function randomRoomLocalpart(): string {
  const letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
  return Array.from(randomBytes(18), (b) => letters[b % letters.length]).join('');
}
