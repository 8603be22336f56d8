// Publish: a local web app reachable from outside through a server.
import { UpcomingPanel } from "../upcoming";

export class PublishPanel extends UpcomingPanel {
  constructor() {
    super("Publish", "Make a web app running on this computer reachable from outside, through a server.");
  }
}
