// Lint rules for every TypeScript file of the project; formatting is prettier's (eslint-config-prettier
// turns off the rules that would fight it). Type-aware rules are left out to keep `npm test` fast.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: ['node_modules/', '.dev/', '.test-state/', '.wrangler/', 'bench/results/', 'migrations/', 'hsm-bridge/dist/'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    files: ['**/*.{ts,js,mjs,cjs}'],
    languageOptions: { ecmaVersion: 2023, sourceType: 'module' },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-console': 'off',
      // Errors here deliberately do not chain what they caught: its message may carry a value,
      // a key or a token, and the error a caller sees must not.
      'preserve-caught-error': 'off',
      // Flags the `let x = default; try { x = … } catch {}` shape this code uses on purpose.
      'no-useless-assignment': 'off',
      '@typescript-eslint/ban-ts-comment': ['error', { 'ts-ignore': 'allow-with-description' }],
      // `import { z }` keeps every zod locale and converter in the Worker bundle (350 KB limit);
      // the namespace import lets esbuild drop what is never used.
      'no-restricted-syntax': [
        'error',
        {
          selector: "ImportDeclaration[source.value='zod'] > ImportSpecifier[imported.name='z']",
          message: "Use `import * as z from 'zod'` (bundle size).",
        },
      ],
    },
  },
  {
    // TypeScript checks names itself; the bench's plain-JS Workers run in workerd.
    files: ['**/*.ts'],
    rules: { 'no-undef': 'off' },
  },
  {
    // Tests read arbitrary JSON answers; typing each one would add noise, not safety.
    files: ['test/**/*.ts', 'hsm-bridge/test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['bench/workers/**/*.js'],
    languageOptions: {
      globals: {
        crypto: 'readonly',
        Response: 'readonly',
        Request: 'readonly',
        URL: 'readonly',
        btoa: 'readonly',
        atob: 'readonly',
        performance: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        console: 'readonly',
      },
    },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { module: 'writable', require: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
