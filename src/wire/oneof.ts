/**
 * Which member of a oneof is set. Only own, non-null properties count: a decoded protobufjs message
 * inherits default values (an empty `payload`, say) from its prototype, and those are not "set".
 * More than one member set is rejected: no correct encoder produces it, and accepting "the last
 * one wins" would let a peer hide one command behind another.
 */
import type { FieldReader, Fields } from './fields.js';

export function oneofCase<T extends string>(
  reader: FieldReader,
  message: Fields,
  oneofName: string,
  members: readonly T[],
): T | undefined {
  let found: T | undefined;
  for (const member of members) {
    if (!Object.hasOwn(message, member) || message[member] === undefined || message[member] === null) continue;
    if (found !== undefined) {
      reader.fail(oneofName, `has both ${found} and ${member} set; exactly one is allowed`);
      return undefined;
    }
    found = member;
  }
  if (found === undefined) reader.fail(oneofName, `is required: one of ${members.join(', ')}`);
  return found;
}
