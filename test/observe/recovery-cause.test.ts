/** The `cause` label of `exactor_recoveries_total`, from the coordinator's failure texts. */
import t from "tap"
import { recoveryCause } from "../../lib/observe/PrometheusExport.ts"

t.test("recovery causes", async (t) => {
  t.equal(recoveryCause('total#1 exited ({"code":null,"signal":"SIGKILL"})'), "process_exit")
  t.equal(recoveryCause("total#1 restarted (new incarnation)"), "process_restart")
  t.equal(recoveryCause("sink#0 missed heartbeats for 6000 ms (timeout 5000 ms)"), "heartbeat_timeout")
  t.equal(recoveryCause("4 consecutive checkpoints failed (tolerableFailures 3)"), "checkpoint_failures")
  t.equal(recoveryCause("recovery in epoch 4 failed: boom"), "recovery_failed")
  t.equal(recoveryCause("parse#0: UserCodeError: bad record"), "instance_failed")
})
