// drizzle-kit reads src/storage/schema.ts (the source of truth) and writes SQL migrations to
// migrations/, which wrangler applies (wrangler.toml `migrations_dir`). Run `npm run db:generate`
// after changing the schema, and commit the generated SQL and migrations/meta together.
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'sqlite',
  schema: './src/storage/schema.ts',
  out: './migrations',
});
