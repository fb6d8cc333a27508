/**
 * The msgpack codec of every exactor message and snapshot: plain objects and arrays, binary as
 * `Uint8Array`, no records, no extension types beyond what the encoder writes itself (`undefined`
 * and `Date`).
 *
 * msgpackr's decoder also builds an Error, a Set, a RegExp, a typed array, a BigInt, a bundle or a
 * structured-clone reference from their extension types. The encoder here never writes them and
 * cannot write them back the same way (an Error re-encodes as an array), so a value carrying one
 * would change between a delivery and a replay from a snapshot. Forged bytes that carry one are
 * therefore refused: decoding them throws, which `Envelope.decode` turns into its typed error.
 * msgpackr's extension table is per module, so the guard holds for every decoder in the process.
 */
import { addExtension, Packr } from "msgpackr"

/** Extension types msgpackr decodes by default that the encoder below never writes. */
const refusedExtensions: ReadonlyArray<readonly [number, string]> = [
  [0x42, "BigInt"],
  [0x62, "string bundle"],
  [0x65, "Error"],
  [0x69, "structured-clone id"],
  [0x70, "structured-clone pointer"],
  [0x73, "Set"],
  [0x74, "typed array"],
  [0x78, "RegExp"]
]

for (const [type, name] of refusedExtensions) {
  const refusal = `msgpack extension 0x${type.toString(16)} (${name}) is not part of an exactor message`
  addExtension({
    type,
    unpack: () => {
      throw new Error(refusal)
    }
  })
}

export const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false })
