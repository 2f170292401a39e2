/**
 * lepton-nb: a right-sidebar "Lepton" panel showing every cluster started from
 * this server's kernels, and the palette command "Lepton: Open cluster monitor".
 */

import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { LabIcon } from '@jupyterlab/ui-components';

import { MonitorPanel } from './panel';

const COMMAND = 'lepton:open-monitor';

const ICON = new LabIcon({
  name: 'lepton-nb:icon',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<circle cx="5" cy="6" r="3"/><circle cx="19" cy="6" r="3"/><circle cx="12" cy="19" r="3"/>' +
    '<path d="M7 7.5l4 9 1.6-.7-4-9zM17 7.5l-4 9-1.6-.7 4-9zM7.5 5h9v2h-9z"/></g></svg>'
});

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'lepton-nb:monitor',
  description: 'A sidebar panel with the placement, memory, state and links of lepton_nb clusters.',
  autoStart: true,
  requires: [ILabShell],
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, shell: ILabShell, palette: ICommandPalette | null) => {
    let panel: MonitorPanel | null = null;
    const open = (activate: boolean) => {
      if (!panel || panel.isDisposed) {
        panel = new MonitorPanel();
        panel.title.icon = ICON;
        panel.title.caption = 'Lepton cluster monitor';
        shell.add(panel, 'right', { rank: 900 });
      }
      if (activate) {
        shell.activateById(panel.id);
      }
    };
    app.commands.addCommand(COMMAND, {
      label: 'Lepton: Open cluster monitor',
      caption: 'Show the placement, memory, state and links of every rank',
      execute: () => open(true)
    });
    palette?.addItem({ command: COMMAND, category: 'Lepton' });
    app.restored.then(() => open(false));
  }
};

export default plugin;
