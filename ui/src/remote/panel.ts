// Remote access: colleagues reach this machine's ports through a relay.
import { UpcomingPanel } from "../upcoming";

export class RemotePanel extends UpcomingPanel {
  constructor() {
    super("Remote access", "Let colleagues reach ports on this computer through a relay.");
  }
}
