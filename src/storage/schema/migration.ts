// One schema migration: a numbered step that `migrations.ts` applies in its own transaction.

export interface Migration {
  readonly version: number;
  readonly name: string;
  /** Statements separated by `;`, shared by both dialects... */
  readonly sql?: string;
  /** ...or, where the dialects differ, one text per dialect. */
  readonly sqlite?: string;
  readonly postgres?: string;
}
