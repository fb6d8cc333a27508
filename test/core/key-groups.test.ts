import t from "tap"
import { hashKey, instanceForKeyGroup, keyGroupOf, keyGroupRange } from "../../lib/core/KeyGroups.ts"

t.test("every key group belongs to exactly one instance, in contiguous ranges", async (t) => {
  for (const max of [1, 7, 128, 1000]) {
    for (let p = 1; p <= Math.min(max, 40); p++) {
      const owner = new Array<number>(max).fill(-1)
      for (let i = 0; i < p; i++) {
        const { start, end } = keyGroupRange(max, p, i)
        t.ok(start <= end, `max ${max} p ${p} instance ${i} owns at least one group`)
        for (let g = start; g <= end; g++) {
          if (owner[g] !== -1) t.fail(`group ${g} owned twice`)
          owner[g] = i
        }
      }
      t.ok(
        owner.every((o) => o >= 0),
        `max ${max} p ${p}: all groups owned`
      )
      t.ok(
        owner.every((o, g) => instanceForKeyGroup(max, p, g) === o),
        `max ${max} p ${p}: instanceForKeyGroup agrees with the ranges`
      )
    }
  }
})

t.test("the hash is stable and spreads keys", async (t) => {
  t.equal(hashKey("c0042"), hashKey("c0042"))
  t.not(hashKey(42), hashKey("42"), "numbers and strings are different keys")
  // fixed values: a change of the hash would silently re-partition saved state
  t.equal(hashKey("customer-1"), hashKey("customer-1"))
  const counts = new Array<number>(128).fill(0)
  for (let i = 0; i < 128_000; i++) counts[keyGroupOf(`c${i}`, 128)]!++
  const min = Math.min(...counts)
  const max = Math.max(...counts)
  t.ok(min > 800 && max < 1200, `128k keys over 128 groups: min ${min}, max ${max}`)
})

t.test("the hash does not change between versions (saved state depends on it)", async (t) => {
  t.same(
    ["a", "c0042", "customer-1", 7].map((k) => keyGroupOf(k, 128)),
    ["a", "c0042", "customer-1", 7].map((k) => hashKey(k) % 128)
  )
  t.same(
    ["a", "c0042", "customer-1", 7].map((k) => hashKey(k)),
    [298494453, 3308246682, 3841246388, 3037032814],
    "murmur3 values as first released"
  )
})
