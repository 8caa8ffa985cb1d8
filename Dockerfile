# The Baton image: the engine, the HTTP API, the CLI and the example functions, run from the
# compiled JavaScript (dist/, built by `npm run build` in the first stage), as an installed Baton
# runs. docker-compose.yml runs every Baton service from this one image, each with its own command.

# Node 20, as package.json's "engines" asks (>=20.19); slim Debian keeps the image small.
FROM node:20-bookworm-slim AS build

WORKDIR /app

# Every dependency (TypeScript is a dev dependency), from the lockfile alone, so that editing a
# source file does not reinstall them; `prepare` skips the build here, the sources are not in yet.
COPY package.json package-lock.json ./
RUN npm ci

# The sources (.dockerignore keeps out node_modules, dist/, local data, tests and benchmarks),
# compiled to dist/.
COPY . .
RUN npm run build

FROM node:20-bookworm-slim

WORKDIR /app
ENV NODE_ENV=production

# The runtime dependencies only. tsx stays one of them: it loads a user's function modules
# written in TypeScript (`baton worker functions/examples.ts`); Baton's own code is compiled.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

# The sources (the example functions and workflows, the console's front end, which esbuild
# bundles when /ui is first asked for) and the compiled code from the first stage.
COPY . .
COPY --from=build /app/dist ./dist

# `baton` on the PATH: Node follows the link to /app/bin/baton.mjs, so its imports resolve from
# /app/node_modules. The directories are where the example functions write (BATON_EFFECT_DIR,
# BATON_LOG_DIR, BATON_WEATHER_DIR in docker-compose.yml); a named volume mounted on
# /var/lib/baton starts as a copy of them, owned by the unprivileged user below.
RUN chmod 755 /app/bin/baton.mjs \
  && ln -s /app/bin/baton.mjs /usr/local/bin/baton \
  && mkdir -p /var/lib/baton/effects /var/lib/baton/logs /var/lib/baton/weather \
  && chown -R node:node /var/lib/baton

# The official Node image's unprivileged user; nothing here needs root at run time.
USER node

# Each service names its own command; without one, the list of commands.
CMD ["baton", "help"]
