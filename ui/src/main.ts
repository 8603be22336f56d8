import "./style.css";
import { App } from "./app";

const root = document.getElementById("app");
if (root) {
  const app = new App(root);
  app.start().catch((e) => {
    root.textContent = `The app could not start: ${String(e)}`;
  });
}
