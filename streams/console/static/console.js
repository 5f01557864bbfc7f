// propwatch review console: keyboard shortcuts. No framework, no build step; the pages work without it.
//   r  reveal or hide the item's text      a  go to the approve button (Enter approves)
//   x  go to the reject reason             n  the next pending item    q  the queue
(function () {
  "use strict";
  function typing(target) {
    return target && target.closest && target.closest("input, textarea, select, [contenteditable]");
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) {
      return;
    }
    var target = null;
    switch (event.key) {
      case "r":
        var text = document.getElementById("item-text");
        if (text) {
          text.open = !text.open;
          event.preventDefault();
        }
        return;
      case "a":
        target = document.getElementById("approve-button");
        break;
      case "x":
        target = document.getElementById("reject-reason");
        break;
      case "n":
        window.location.assign("/next");
        return;
      case "q":
        window.location.assign("/queue");
        return;
      default:
        return;
    }
    if (target) {
      event.preventDefault();
      target.scrollIntoView({ block: "center" });
      target.focus();
    }
  });
})();
