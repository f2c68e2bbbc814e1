/**
 * A plan file as a person writes it (see `snapctl plans register --help`): the model's camelCase
 * JSON, with "server/app" accepted for any app. Only the shape is checked here; whether the plan
 * makes sense is the coordinator's to say (its INVALID_ARGUMENT message names the field).
 */
import type { AppRef, ChannelKind, PlanInput } from '../model.js';

export type PlanFileResult = { readonly ok: true; readonly plan: PlanInput } | { readonly ok: false; readonly error: string };

class ShapeError extends Error {}

function shape(message: string): never {
  throw new ShapeError(message);
}

function obj(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) shape(`${where} must be an object`);
  return value as Record<string, unknown>;
}

function str(value: unknown, where: string): string {
  if (typeof value !== 'string') shape(`${where} must be a string`);
  return value;
}

function arr(value: unknown, where: string): unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) shape(`${where} must be a list`);
  return value;
}

function app(value: unknown, where: string): AppRef {
  if (typeof value === 'string') {
    const [server, name, ...rest] = value.split('/');
    if (server === undefined || name === undefined || rest.length > 0) shape(`${where} "${value}" must be "server/app"`);
    return { server, app: name };
  }
  const o = obj(value, where);
  return { server: str(o.server, `${where}.server`), app: str(o.app, `${where}.app`) };
}

export function parsePlanFile(text: string, path: string): PlanFileResult {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { ok: false, error: `${path} is not valid JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
  try {
    const o = obj(json, path);
    const plan: PlanInput = {
      id: str(o.id, 'id'),
      tenant: str(o.tenant, 'tenant'),
      servers: arr(o.servers, 'servers').map((s, i) => str(s, `servers[${i}]`)),
      apps: arr(o.apps, 'apps').map((a, i) => app(a, `apps[${i}]`)),
      channels: arr(o.channels, 'channels').map((c, i) => {
        const ch = obj(c, `channels[${i}]`);
        const logStream = ch.logStream === undefined ? undefined : str(ch.logStream, `channels[${i}].logStream`);
        const logSubject = ch.logSubject === undefined ? undefined : str(ch.logSubject, `channels[${i}].logSubject`);
        return {
          from: app(ch.from, `channels[${i}].from`),
          to: app(ch.to, `channels[${i}].to`),
          kind: str(ch.kind ?? 'in-band', `channels[${i}].kind`) as ChannelKind,
          ...(logStream !== undefined ? { logStream } : {}),
          ...(logSubject !== undefined ? { logSubject } : {}),
        };
      }),
      volumes: arr(o.volumes, 'volumes').map((v, i) => {
        const vol = obj(v, `volumes[${i}]`);
        return { id: str(vol.id, `volumes[${i}].id`), server: str(vol.server, `volumes[${i}].server`), backendRef: str(vol.backendRef, `volumes[${i}].backendRef`) };
      }),
    };
    return { ok: true, plan };
  } catch (error) {
    if (error instanceof ShapeError) return { ok: false, error: `${path}: ${error.message}` };
    throw error;
  }
}
