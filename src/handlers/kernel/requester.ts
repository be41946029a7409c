// Who is making an authenticated request.

export interface Requester {
  readonly userId: string;
  readonly deviceId: string;
  readonly isGuest: boolean;
  /** SHA-256 of the access token used (identifies the session, e.g. for /logout). */
  readonly tokenHash: string;
}
