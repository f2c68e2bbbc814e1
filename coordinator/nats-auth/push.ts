/**
 * Pushes account JWTs to the servers' `full` resolver (`$SYS.REQ.CLAIMS.UPDATE`, as the system
 * account's user): a server takes the new account at once, applies changed imports and exports,
 * and closes the connections of users the JWT revokes. In a cluster the servers pass it on to each
 * other.
 */
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type ConnectionOptions, type NatsConnection } from 'nats';
import { err, ok, type Result } from '../../src/result.js';
import { claimsOf } from './jwt.js';

const PUSH_TIMEOUT_MS = 5_000;

export async function connectWithCreds(servers: string, credsPath: string, name: string, options: Pick<ConnectionOptions, 'timeout' | 'reconnect'> = {}): Promise<NatsConnection> {
  return connect({ servers: servers.split(','), name, authenticator: credsAuthenticator(readFileSync(credsPath)), ...options });
}

interface ClaimsAnswer {
  readonly data?: { readonly code?: number; readonly message?: string };
  readonly error?: { readonly code?: number; readonly description?: string };
}

export async function pushAccountJwts(natsUrl: string, systemCreds: string, jwts: readonly string[]): Promise<Result<void, string>> {
  let nc: NatsConnection;
  try {
    nc = await connectWithCreds(natsUrl, systemCreds, 'snapctl-claims');
  } catch (error) {
    return err(`cannot connect to NATS at ${natsUrl} as the system account: ${error instanceof Error ? error.message : String(error)}`);
  }
  try {
    for (const jwt of jwts) {
      const account = `${String(claimsOf(jwt)['name'])} (${String(claimsOf(jwt)['sub'])})`;
      let answer: ClaimsAnswer;
      try {
        const reply = await nc.request('$SYS.REQ.CLAIMS.UPDATE', new TextEncoder().encode(jwt), { timeout: PUSH_TIMEOUT_MS });
        answer = JSON.parse(new TextDecoder().decode(reply.data)) as ClaimsAnswer;
      } catch (error) {
        return err(`account ${account} not pushed to NATS at ${natsUrl}: ${error instanceof Error ? error.message : String(error)} (is nats-server in operator mode with a full resolver?)`);
      }
      if (answer.error !== undefined || answer.data?.code !== 200) {
        return err(`account ${account} refused by NATS at ${natsUrl}: ${answer.error?.description ?? answer.data?.message ?? JSON.stringify(answer)}`);
      }
    }
    return ok(undefined);
  } finally {
    await nc.close();
  }
}
