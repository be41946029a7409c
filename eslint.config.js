// `npm run lint`. ESLint's recommended rules, typescript-eslint's recommended rules, and the
// type-aware rules that find real defects: promises nobody awaits or passes where a plain callback
// is expected, `await` on what is not a promise, throwing what is not an Error, casts that do
// nothing, objects in template strings, `any` leaking into the server's code. Type information
// comes from tsconfig.json (the project service), so lint and tsc agree.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  // What .gitignore leaves out (eslint does not read it).
  { ignores: ['dist/', 'node_modules/', 'data/', 'tmp/'] },
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    rules: {
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-constant-condition': ['error', { checkLoops: false }],
      // prettier keeps code within 140 columns but leaves long strings and comments alone.
      'max-len': ['error', { code: 140 }],
      '@typescript-eslint/no-unused-vars': ['error', { args: 'after-used', argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test's test() and describe() return promises the runner itself awaits.
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] }] },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unnecessary-type-assertion': 'error',
      '@typescript-eslint/only-throw-error': 'error',
      '@typescript-eslint/no-base-to-string': 'error',
      '@typescript-eslint/restrict-template-expressions': 'error',
    },
  },
  {
    // `any` must not leak into the server's own code (tests and benchmarks read JSON answers: below).
    files: ['src/**'],
    rules: {
      '@typescript-eslint/no-unsafe-argument': 'error',
      '@typescript-eslint/no-unsafe-assignment': 'error',
      '@typescript-eslint/no-unsafe-call': 'error',
      '@typescript-eslint/no-unsafe-member-access': 'error',
      '@typescript-eslint/no-unsafe-return': 'error',
    },
  },
  {
    // Tests and benchmarks read the server's JSON answers; `any` there stands for "whatever the
    // server sent", which the assertions then check. The server's own code has none.
    files: ['test/**', 'bench/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // The JavaScript entry points (bin/, scripts/test.mjs, this file) run on Node as they are.
    files: ['**/*.{js,mjs}', 'bin/myelin'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
