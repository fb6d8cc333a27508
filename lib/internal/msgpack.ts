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
const refusedExtensions: Readonly<Record<number, string>> = {
  66: "BigInt",
  98: "string bundle",
  101: "Error",
  105: "structured-clone id",
  112: "structured-clone pointer",
  115: "Set",
  116: "typed array",
  120: "RegExp"
}

for (const [type, name] of Object.entries(refusedExtensions)) {
  addExtension({
    type: Number(type),
    unpack: () => {
      throw new Error(
        `msgpack extension 0x${Number(type).toString(16)} (${name}) is not part of an exactor message`
      )
    }
  })
}

export const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false })
